// Built-in tool server "chart_generator": labels + numeric series → a standalone SVG chart
// (bar, line or pie). Tool `render`.
import { Builder, fixed, JValue, K, numText, quote } from "../../shared/json";
import { args, fail, output } from "../../shared/tool";

const PALETTE: Array<string> = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const MAX_LABELS = 1000;
const MAX_SERIES = 20;

/** Text for SVG/XML content and attributes: markup escaped, characters XML forbids dropped. */
function esc(s: string): string {
  const b = new Builder();
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let rep: string | null = null;
    if (c == 0x26) rep = "&amp;";
    else if (c == 0x3c) rep = "&lt;";
    else if (c == 0x3e) rep = "&gt;";
    else if (c == 0x22) rep = "&quot;";
    else if (c == 0x27) rep = "&#39;";
    else if ((c < 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) || c == 0xfffe || c == 0xffff) rep = "";
    else if (c >= 0xd800 && c <= 0xdbff) {
      // keep a valid surrogate pair, drop a lone one
      if (i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff) {
        i++;
        continue;
      }
      rep = "";
    } else if (c >= 0xdc00 && c <= 0xdfff) rep = "";
    if (rep == null) continue;
    if (i > from) b.add(s.substring(from, i));
    b.add(rep);
    from = i + 1;
  }
  if (from == 0) return s;
  if (from < s.length) b.add(s.substring(from));
  return b.toString();
}

function n2(v: f64): string {
  return fixed(v, 2);
}

class Series {
  constructor(public name: string, public values: Array<f64>, public present: Array<bool>) {}
}

let problem: string = "";

/** A label from a JSON value (strings as is, numbers and booleans as text). */
function labelText(v: JValue): string {
  if (v.kind == K.Str) return v.s;
  if (v.kind == K.Num) return numText(v.n);
  if (v.kind == K.Bool) return v.b ? "true" : "false";
  if (v.kind == K.Null) return "";
  return v.stringify();
}

function isNumeric(s: string): bool {
  const t = s.trim();
  if (t.length == 0) return false;
  let digits = 0;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) digits++;
    else if (c != 0x2d && c != 0x2b && c != 0x2e && c != 0x65 && c != 0x45) return false;
  }
  return digits > 0 && !isNaN(parseFloat(t));
}

/** Reads a value into `series` at `i`; false (with `problem` set) when it is not a number. */
function readValue(v: JValue | null, s: Series, where: string): bool {
  if (v == null || v.kind == K.Null || (v.kind == K.Str && v.s.trim().length == 0)) {
    s.values.push(0);
    s.present.push(false);
    return true;
  }
  if (v.kind == K.Num && isFinite(v.n)) {
    s.values.push(v.n);
    s.present.push(true);
    return true;
  }
  if (v.kind == K.Str && isNumeric(v.s)) {
    s.values.push(parseFloat(v.s.trim()));
    s.present.push(true);
    return true;
  }
  problem = where + " is " + (v.kind == K.Str ? quote(v.s) : v.stringify()) + ", not a number";
  return false;
}

class Layout {
  x0: f64 = 0;
  y0: f64 = 0;
  w: f64 = 0;
  h: f64 = 0;
}

function niceStep(raw: f64): f64 {
  if (raw <= 0 || !isFinite(raw)) return 1;
  const e = Math.floor(Math.log10(raw));
  const p = Math.pow(10, e);
  const f = raw / p;
  const nf = f <= 1 ? 1.0 : f <= 2 ? 2.0 : f <= 2.5 ? 2.5 : f <= 5 ? 5.0 : 10.0;
  return nf * p;
}

function decimalsFor(step: f64): i32 {
  for (let d = 0; d < 10; d++) {
    const scaled = step * Math.pow(10, <f64>d);
    if (Math.abs(scaled - Math.round(scaled)) < 1e-9 * Math.max(1, scaled)) return d;
  }
  return 10;
}

/**
 * Tool `render`: {"type": "bar"|"line"|"pie", "title"?, "x_label"?, "y_label"?, "labels": [...],
 * "series": [{"name", "values": [...]}]} — or, instead of labels and series, {"rows": [{...}],
 * "label_key": "month", "value_keys": ["sales"]} (rows as csv_parser returns them; numeric
 * strings are accepted) — plus "width"?, "height"? → the SVG document as text.
 */
export function render(): i32 {
  const a = args();
  const type = a.getString("type", "bar");
  if (type != "bar" && type != "line" && type != "pie") return fail("\"type\" must be \"bar\", \"line\" or \"pie\", not " + quote(type));
  const width = Math.min(Math.max(a.getNumber("width", 640), 200), 4000);
  const height = Math.min(Math.max(a.getNumber("height", 400), 150), 4000);
  const title = a.getString("title");
  const xLabel = a.getString("x_label");
  const yLabel = a.getString("y_label");

  const labels = new Array<string>();
  const series = new Array<Series>();
  const rows = a.get("rows");
  if (rows != null && rows.kind == K.Arr) {
    const labelKey = a.getString("label_key");
    if (labelKey.length == 0) return fail("\"label_key\" is required with \"rows\": the member that holds each row's label");
    const keys = new Array<string>();
    const vk = a.get("value_keys");
    if (vk != null && vk.kind == K.Arr) {
      for (let i = 0; i < vk.size; i++) if (vk.at(i).kind == K.Str) keys.push(vk.at(i).s);
    } else if (rows.size > 0 && rows.at(0).kind == K.Obj) {
      // every member of the first row but the label that holds a number
      const first = rows.at(0);
      for (let i = 0; i < first.keys!.length; i++) {
        const k = first.keys![i];
        const v = first.vals![i];
        if (k != labelKey && (v.kind == K.Num || (v.kind == K.Str && isNumeric(v.s)))) keys.push(k);
      }
    }
    if (keys.length == 0) return fail("no value columns: pass \"value_keys\" (the members holding the numbers)");
    for (let k = 0; k < keys.length; k++) series.push(new Series(keys[k], new Array<f64>(), new Array<bool>()));
    for (let r = 0; r < rows.size; r++) {
      const row = rows.at(r);
      if (row.kind != K.Obj) return fail("rows[" + r.toString() + "] is not an object");
      const l = row.get(labelKey);
      if (l == null) return fail("rows[" + r.toString() + "] has no member " + quote(labelKey) + " (label_key)");
      labels.push(labelText(l));
      for (let k = 0; k < keys.length; k++) {
        if (!readValue(row.get(keys[k]), series[k], "rows[" + r.toString() + "]." + keys[k])) return fail(problem);
      }
    }
  } else {
    const ls = a.get("labels");
    const ss = a.get("series");
    if (ls == null || ls.kind != K.Arr) return fail("pass \"labels\" and \"series\" (or \"rows\" with \"label_key\" and \"value_keys\")");
    if (ss == null || ss.kind != K.Arr || ss.size == 0) return fail("\"series\" must be a non-empty array of {\"name\", \"values\"}");
    for (let i = 0; i < ls.size; i++) labels.push(labelText(ls.at(i)));
    for (let k = 0; k < ss.size; k++) {
      const sv = ss.at(k);
      const vals = sv.get("values");
      if (sv.kind != K.Obj || vals == null || vals.kind != K.Arr) return fail("series[" + k.toString() + "] must be an object with \"values\" (an array of numbers)");
      const name = sv.getString("name", "series " + (k + 1).toString());
      if (vals.size != labels.length) return fail("series " + quote(name) + " has " + vals.size.toString() + " values for " + labels.length.toString() + " labels");
      const s = new Series(name, new Array<f64>(), new Array<bool>());
      for (let i = 0; i < vals.size; i++) if (!readValue(vals.at(i), s, "series " + quote(name) + " value " + i.toString())) return fail(problem);
      series.push(s);
    }
  }
  if (labels.length == 0) return fail("there is no data to chart (no labels / rows)");
  if (labels.length > MAX_LABELS) return fail("too many labels (" + labels.length.toString() + "; at most " + MAX_LABELS.toString() + ")");
  if (series.length > MAX_SERIES) return fail("too many series (" + series.length.toString() + "; at most " + MAX_SERIES.toString() + ")");

  const b = new Builder();
  b.add('<svg xmlns="http://www.w3.org/2000/svg" width="').add(n2(width)).add('" height="').add(n2(height))
    .add('" viewBox="0 0 ').add(n2(width)).add(" ").add(n2(height)).add('" role="img" font-family="Helvetica, Arial, sans-serif" font-size="12">');
  b.add("<title>").add(esc(title.length > 0 ? title : type + " chart")).add("</title>");
  b.add('<rect width="100%" height="100%" fill="#ffffff"/>');
  let top: f64 = 16;
  if (title.length > 0) {
    b.add('<text class="title" x="').add(n2(width / 2)).add('" y="28" text-anchor="middle" font-size="18" font-weight="bold">').add(esc(title)).add("</text>");
    top = 44;
  }
  if (type == "pie") {
    const r = renderPie(b, labels, series, width, height, top);
    if (r != 0) return r;
  } else {
    if (series.length > 1) {
      // legend: one row under the title
      let lx: f64 = 16;
      for (let k = 0; k < series.length; k++) {
        b.add('<g class="legend-item"><rect x="').add(n2(lx)).add('" y="').add(n2(top)).add('" width="12" height="12" fill="').add(PALETTE[k % PALETTE.length]).add('"/>');
        b.add('<text x="').add(n2(lx + 16)).add('" y="').add(n2(top + 10)).add('">').add(esc(series[k].name)).add("</text></g>");
        lx += 28 + 7 * <f64>min(series[k].name.length, 30);
      }
      top += 24;
    }
    const L = new Layout();
    L.x0 = yLabel.length > 0 ? 82 : 62;
    L.y0 = top + 8;
    L.w = width - L.x0 - 20;
    const rotate = L.w / <f64>labels.length < 60;
    const bottom: f64 = (rotate ? 70 : 36) + (xLabel.length > 0 ? 22 : 0);
    L.h = height - L.y0 - bottom;
    if (L.w < 40 || L.h < 40) return fail("the chart is too small for its labels: raise \"width\" / \"height\"");
    renderAxes(b, L, labels, series, type, rotate, xLabel, yLabel);
  }
  b.add("</svg>");
  output(b.toString());
  return 0;
}

function renderAxes(b: Builder, L: Layout, labels: Array<string>, series: Array<Series>, type: string, rotate: bool, xLabel: string, yLabel: string): void {
  let lo: f64 = 0;
  let hi: f64 = 0;
  for (let k = 0; k < series.length; k++) {
    const s = series[k];
    for (let i = 0; i < s.values.length; i++) {
      if (!s.present[i]) continue;
      lo = Math.min(lo, s.values[i]);
      hi = Math.max(hi, s.values[i]);
    }
  }
  if (hi == lo) hi = lo + 1;
  const step = niceStep((hi - lo) / 5);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const dec = decimalsFor(step);
  const span = hi - lo;
  // grid and tick labels
  b.add('<g class="y-axis">');
  const ticks = <i32>Math.round(span / step);
  for (let t = 0; t <= ticks; t++) {
    const v = lo + <f64>t * step;
    const y = L.y0 + L.h - ((v - lo) / span) * L.h;
    b.add('<line x1="').add(n2(L.x0)).add('" x2="').add(n2(L.x0 + L.w)).add('" y1="').add(n2(y)).add('" y2="').add(n2(y)).add('" stroke="#e0e0e0"/>');
    b.add('<text x="').add(n2(L.x0 - 6)).add('" y="').add(n2(y + 4)).add('" text-anchor="end">').add(fixed(v, dec)).add("</text>");
  }
  b.add("</g>");
  const zeroY = L.y0 + L.h - ((0 - lo) / span) * L.h;
  const band = L.w / <f64>labels.length;
  // data
  if (type == "bar") {
    const group = band * 0.8;
    const bw = group / <f64>series.length;
    for (let k = 0; k < series.length; k++) {
      const s = series[k];
      b.add('<g class="series" data-series="').add(esc(s.name)).add('" fill="').add(PALETTE[k % PALETTE.length]).add('">');
      for (let i = 0; i < labels.length; i++) {
        if (!s.present[i]) continue;
        const v = s.values[i];
        const y = L.y0 + L.h - ((v - lo) / span) * L.h;
        const x = L.x0 + band * <f64>i + band * 0.1 + bw * <f64>k;
        b.add('<rect class="bar" x="').add(n2(x)).add('" y="').add(n2(Math.min(y, zeroY))).add('" width="').add(n2(Math.max(bw - 1, 1)))
          .add('" height="').add(n2(Math.abs(zeroY - y))).add('" data-label="').add(esc(labels[i])).add('" data-value="').add(numText(v)).add('">');
        b.add("<title>").add(esc(labels[i] + (series.length > 1 ? " · " + s.name : "") + ": " + numText(v))).add("</title></rect>");
      }
      b.add("</g>");
    }
  } else {
    for (let k = 0; k < series.length; k++) {
      const s = series[k];
      const color = PALETTE[k % PALETTE.length];
      const pts = new Builder();
      const dots = new Builder();
      let n = 0;
      for (let i = 0; i < labels.length; i++) {
        if (!s.present[i]) continue;
        const v = s.values[i];
        const x = L.x0 + band * (<f64>i + 0.5);
        const y = L.y0 + L.h - ((v - lo) / span) * L.h;
        pts.add(n > 0 ? " " : "").add(n2(x)).add(",").add(n2(y));
        dots.add('<circle class="point" cx="').add(n2(x)).add('" cy="').add(n2(y)).add('" r="3" data-label="').add(esc(labels[i])).add('" data-value="').add(numText(v)).add('">');
        dots.add("<title>").add(esc(labels[i] + (series.length > 1 ? " · " + s.name : "") + ": " + numText(v))).add("</title></circle>");
        n++;
      }
      b.add('<g class="series" data-series="').add(esc(s.name)).add('" fill="').add(color).add('">');
      b.add('<polyline class="line" fill="none" stroke="').add(color).add('" stroke-width="2" points="').add(pts.toString()).add('"/>');
      b.add(dots.toString()).add("</g>");
    }
  }
  // axes
  b.add('<line class="axis" x1="').add(n2(L.x0)).add('" x2="').add(n2(L.x0)).add('" y1="').add(n2(L.y0)).add('" y2="').add(n2(L.y0 + L.h)).add('" stroke="#333"/>');
  b.add('<line class="axis" x1="').add(n2(L.x0)).add('" x2="').add(n2(L.x0 + L.w)).add('" y1="').add(n2(zeroY)).add('" y2="').add(n2(zeroY)).add('" stroke="#333"/>');
  b.add('<g class="x-axis">');
  for (let i = 0; i < labels.length; i++) {
    const x = L.x0 + band * (<f64>i + 0.5);
    const y = L.y0 + L.h + 16;
    b.add('<text class="label" x="').add(n2(x)).add('" y="').add(n2(y)).add('"');
    if (rotate) b.add(' text-anchor="end" transform="rotate(-45 ').add(n2(x)).add(" ").add(n2(y)).add(')"');
    else b.add(' text-anchor="middle"');
    b.add(">").add(esc(labels[i])).add("</text>");
  }
  b.add("</g>");
  if (xLabel.length > 0) {
    b.add('<text class="x-label" x="').add(n2(L.x0 + L.w / 2)).add('" y="').add(n2(L.y0 + L.h + (rotate ? 84 : 50))).add('" text-anchor="middle" font-size="13">').add(esc(xLabel)).add("</text>");
  }
  if (yLabel.length > 0) {
    const cy = L.y0 + L.h / 2;
    b.add('<text class="y-label" x="16" y="').add(n2(cy)).add('" text-anchor="middle" font-size="13" transform="rotate(-90 16 ').add(n2(cy)).add(')">').add(esc(yLabel)).add("</text>");
  }
}

function renderPie(b: Builder, labels: Array<string>, series: Array<Series>, width: f64, height: f64, top: f64): i32 {
  if (series.length != 1) return fail("a pie chart takes exactly one series (got " + series.length.toString() + ")");
  const s = series[0];
  let total: f64 = 0;
  for (let i = 0; i < labels.length; i++) {
    if (!s.present[i]) continue;
    if (s.values[i] < 0) return fail("a pie chart cannot show negative values (" + quote(labels[i]) + " is " + numText(s.values[i]) + ")");
    total += s.values[i];
  }
  if (total <= 0) return fail("a pie chart needs at least one positive value");
  const legendW = Math.min(width * 0.4, 240);
  const r = Math.max(10, Math.min((width - legendW) / 2, (height - top) / 2) - 16);
  const cx = (width - legendW) / 2;
  const cy = top + (height - top) / 2;
  b.add('<g class="series" data-series="').add(esc(s.name)).add('">');
  let angle: f64 = -Math.PI / 2;
  for (let i = 0; i < labels.length; i++) {
    if (!s.present[i] || s.values[i] == 0) continue;
    const v = s.values[i];
    const frac = v / total;
    const color = PALETTE[i % PALETTE.length];
    const tip = "<title>" + esc(labels[i] + ": " + numText(v) + " (" + fixed(frac * 100, 1) + "%)") + "</title>";
    if (frac >= 0.999999) {
      b.add('<circle class="slice" cx="').add(n2(cx)).add('" cy="').add(n2(cy)).add('" r="').add(n2(r)).add('" fill="').add(color)
        .add('" data-label="').add(esc(labels[i])).add('" data-value="').add(numText(v)).add('">').add(tip).add("</circle>");
      continue;
    }
    const end = angle + frac * 2 * Math.PI;
    b.add('<path class="slice" d="M').add(n2(cx)).add(" ").add(n2(cy)).add(" L").add(n2(cx + r * Math.cos(angle))).add(" ").add(n2(cy + r * Math.sin(angle)))
      .add(" A").add(n2(r)).add(" ").add(n2(r)).add(" 0 ").add(frac > 0.5 ? "1" : "0").add(" 1 ").add(n2(cx + r * Math.cos(end))).add(" ").add(n2(cy + r * Math.sin(end)))
      .add(' Z" fill="').add(color).add('" stroke="#ffffff" data-label="').add(esc(labels[i])).add('" data-value="').add(numText(v)).add('">').add(tip).add("</path>");
    angle = end;
  }
  b.add("</g>");
  // legend
  let ly = top + 8;
  const lx = width - legendW + 8;
  for (let i = 0; i < labels.length; i++) {
    if (!s.present[i]) continue;
    b.add('<g class="legend-item"><rect x="').add(n2(lx)).add('" y="').add(n2(ly)).add('" width="12" height="12" fill="').add(PALETTE[i % PALETTE.length]).add('"/>');
    b.add('<text class="label" x="').add(n2(lx + 18)).add('" y="').add(n2(ly + 10)).add('">').add(esc(labels[i] + " (" + fixed((s.values[i] / total) * 100, 1) + "%)")).add("</text></g>");
    ly += 18;
    if (ly > height - 16) break;
  }
  return 0;
}
