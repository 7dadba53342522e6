/* A tool server in C: one tool, `stats.describe`, JSON in and JSON out. */
#include "caxton.h"

/* {"numbers": [..]} → {"count", "sum", "mean", "min", "max"} */
CAXTON_TOOL(describe) int32_t describe(void) {
  char *input = cx_input(NULL);
  const char *numbers = cx_json_get(input, "numbers");
  if (!numbers || *numbers != '[') {
    free(input);
    return cx_fail("argument \"numbers\" must be an array of numbers");
  }
  double sum = 0, min = 0, max = 0, v;
  size_t count = 0;
  const char *cursor = numbers, *item;
  while ((item = cx_json_next(&cursor))) {
    if (!cx_json_number(item, &v)) {
      free(input);
      return cx_fail("argument \"numbers\" must hold only numbers");
    }
    if (count == 0 || v < min) min = v;
    if (count == 0 || v > max) max = v;
    sum += v;
    count++;
  }
  free(input);
  cx_buf out = {0};
  cx_buf_str(&out, "{\"count\":");
  cx_buf_number(&out, (double)count);
  cx_buf_str(&out, ",\"sum\":");
  cx_buf_number(&out, sum);
  cx_buf_str(&out, ",\"mean\":");
  if (count) cx_buf_number(&out, sum / (double)count);
  else cx_buf_str(&out, "null");
  cx_buf_str(&out, ",\"min\":");
  if (count) cx_buf_number(&out, min);
  else cx_buf_str(&out, "null");
  cx_buf_str(&out, ",\"max\":");
  if (count) cx_buf_number(&out, max);
  else cx_buf_str(&out, "null");
  cx_buf_str(&out, "}");
  return cx_buf_output(&out);
}
