# Turn api/openapi.json into a C array (api_openapi_json) so the daemon
# serves the very file that is checked in and unit-tested.
file(READ "${IN_FILE}" body HEX)
string(LENGTH "${body}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${body}")
set(out "/* Generated from api/openapi.json — do not edit. */\n#include <stddef.h>\n\n")
string(APPEND out "const char api_openapi_json[] = {${body}0x00};\n")
string(APPEND out "const size_t api_openapi_json_len = ${len};\n")
file(WRITE "${OUT_FILE}.tmp" "${out}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT_FILE}.tmp" "${OUT_FILE}")
