"""The allow-list of functions the read-only SQL tool may call on PostgreSQL (one home, as
``functions.py`` is DuckDB's).

Chosen by hand from PostgreSQL 15's ``pg_proc`` (schema ``pg_catalog``): what analysis needs
(string, math, date and time, JSON and JSONB, arrays, regular expressions, hashes, ranges,
aggregates and window functions), called by its bare name or as ``pg_catalog.name``. Left
out: every function that reads or changes settings (``current_setting``, ``set_config``),
runs SQL text (``query_to_xml`` and the other ``*_to_xml`` functions, ``ts_stat``), reads
files, large objects, the server's activity or its catalog (``pg_*``, ``lo_*``,
``has_*_privilege``, ``to_reg*``, ``obj_description``), steps sequences (``nextval``),
waits (``pg_sleep``), locks (``pg_advisory_lock``), or names the server and its clients
(``version``, ``inet_client_addr``, ``current_query``). Operators are allowed whatever
implements them (an operator is looked up in ``pg_catalog`` only: the SQL tool's search path
has no other schema with functions). A function not listed here is refused by name.
"""

PG_ALLOWED_FUNCTIONS = frozenset(
    """
abs acos acosd acosh array_agg array_append array_cat array_dims array_fill array_length
array_lower array_ndims array_position array_positions array_prepend array_remove
array_replace array_to_json array_to_string array_upper ascii asin asind asinh atan atan2
atan2d atand atanh avg bit_and bit_count bit_length bit_or bit_xor bool_and bool_or btrim
cardinality cbrt ceil ceiling char_length character_length chr clock_timestamp coalesce concat
concat_ws convert_from corr cos cosd cosh cot cotd count covar_pop covar_samp cume_dist
date_bin date_part date_trunc decode degrees dense_rank div encode every exp extract factorial
first_value floor format gcd gen_random_uuid generate_series generate_subscripts get_bit
get_byte greatest initcap isempty isfinite json_agg json_array_elements
json_array_elements_text json_array_length json_build_array json_build_object json_each
json_each_text json_extract_path json_extract_path_text json_object json_object_agg
json_object_keys json_strip_nulls json_typeof jsonb_agg jsonb_array_elements
jsonb_array_elements_text jsonb_array_length jsonb_build_array jsonb_build_object jsonb_each
jsonb_each_text jsonb_extract_path jsonb_extract_path_text jsonb_insert jsonb_object
jsonb_object_agg jsonb_object_keys jsonb_path_exists jsonb_path_match jsonb_path_query
jsonb_path_query_array jsonb_path_query_first jsonb_pretty jsonb_set jsonb_set_lax
jsonb_strip_nulls jsonb_typeof justify_days justify_hours justify_interval lag last_value lcm
lead least left length ln localtime localtimestamp log log10 lower lower_inc lower_inf lpad
ltrim make_date make_interval make_time make_timestamp make_timestamptz max md5 min min_scale
mod mode normalize now nth_value ntile nullif num_nonnulls num_nulls octet_length overlay
percent_rank percentile_cont percentile_disc pg_typeof pi position pow power quote_ident
quote_literal quote_nullable radians random range_agg range_intersect_agg rank regexp_count
regexp_instr regexp_like regexp_match regexp_matches regexp_replace regexp_split_to_array
regexp_split_to_table regexp_substr regr_avgx regr_avgy regr_count regr_intercept regr_r2
regr_slope regr_sxx regr_sxy regr_syy repeat replace reverse right round row_number rpad rtrim
scale sha224 sha256 sha384 sha512 sign similar_to_escape sin sind sinh split_part sqrt
starts_with statement_timestamp stddev stddev_pop stddev_samp string_agg string_to_array
string_to_table strpos substr substring sum tan tand tanh timezone to_char to_date to_hex
to_json to_jsonb to_number to_timestamp transaction_timestamp translate trim_array trim_scale
trunc unistr unnest upper upper_inc upper_inf var_pop var_samp variance width_bucket
daterange int4range int8range numrange tsrange tstzrange
""".split()  # noqa: SIM905 (one name per word: reviewable, and short)
)

# Set-returning functions the SQL tool may read FROM (generators and JSON/array expanders).
PG_TABLE_FUNCTIONS = frozenset(
    {
        "generate_series",
        "generate_subscripts",
        "unnest",
        "json_each",
        "json_each_text",
        "json_array_elements",
        "json_array_elements_text",
        "json_object_keys",
        "jsonb_each",
        "jsonb_each_text",
        "jsonb_array_elements",
        "jsonb_array_elements_text",
        "jsonb_object_keys",
        "jsonb_path_query",
        "regexp_matches",
        "regexp_split_to_table",
        "string_to_table",
    }
)

# Why some well-known functions are refused (the message names the reason).
_SETTINGS = "settings are not visible to, and cannot be changed by, the SQL tool"
_NESTED = "it runs SQL text, which the SQL tool does not do"
_SERVER = "it reads the server's files, activity or internals"
PG_DENIED_FUNCTIONS: dict[str, str] = {
    "set_config": _SETTINGS,
    "current_setting": _SETTINGS,
    "query_to_xml": _NESTED,
    "query_to_xmlschema": _NESTED,
    "query_to_xml_and_xmlschema": _NESTED,
    "cursor_to_xml": _NESTED,
    "table_to_xml": _NESTED,
    "schema_to_xml": _NESTED,
    "database_to_xml": _NESTED,
    "ts_stat": _NESTED,
    "dblink": "the SQL tool does not connect to other databases",
    "dblink_exec": "the SQL tool does not connect to other databases",
    "dblink_connect": "the SQL tool does not connect to other databases",
    "nextval": "it changes a sequence",
    "setval": "it changes a sequence",
    "currval": "it reads session state",
    "lastval": "it reads session state",
    "setseed": "it changes session state",
    "pg_sleep": "the SQL tool does not wait",
    "pg_sleep_for": "the SQL tool does not wait",
    "pg_sleep_until": "the SQL tool does not wait",
    "lo_import": _SERVER,
    "lo_export": _SERVER,
    "lo_get": _SERVER,
    "pg_read_file": _SERVER,
    "pg_read_binary_file": _SERVER,
    "pg_ls_dir": _SERVER,
    "pg_stat_file": _SERVER,
    "version": _SERVER,
    "current_query": _SERVER,
}
