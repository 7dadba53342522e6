// What every built-in tool server shares: Caxton's SDK (the template's assembly/caxton.ts, the
// same one third-party AssemblyScript tools use) and the arguments parsed as a JValue.
import { input } from "../../../templates/tool-assemblyscript/assembly/caxton";
import { JValue, parseJson } from "./json";

export { fail, output, input, Files, Http, Sqlite } from "../../../templates/tool-assemblyscript/assembly/caxton";

/** The call's arguments (Caxton has already checked them against the input schema). */
export function args(): JValue {
  const v = parseJson(input(), "arguments");
  return v != null && v.isObj ? v : JValue.obj();
}
