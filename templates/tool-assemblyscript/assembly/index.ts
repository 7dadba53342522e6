// A Caxton tool server in AssemblyScript. Each exported function is one tool: it reads its
// arguments (a JSON object) with input(), writes its answer with output() and returns 0, or
// returns fail("why") on error. See ../README.md.
import { Config } from "@extism/as-pdk";
import { fail, input, Json, output } from "./caxton";

/** Tool `greet`: {"name": "Ada"} → {"greeting": "Hello, Ada!"} */
export function greet(): i32 {
  const args = Json.parse(input());
  const name = args.getString("name");
  if (name.length == 0) return fail("argument \"name\" must be a non-empty string");
  const greeting = Config.get("greeting");
  const text = (greeting != null ? greeting : "Hello") + ", " + name + "!";
  output('{"greeting":' + Json.quote(text) + "}");
  return 0;
}
