/**
 * A tool's result as text, or drawn when it is an SVG image: as an <img> from a data: URL, where
 * the browser runs none of its scripts and loads nothing it links to (and the CSP's img-src
 * allows data:), never inserted into the page's markup.
 */

/** The largest SVG drawn; a larger one is shown as its text. */
const MAX_SVG = 512 * 1024;

export function isSvg(text: string): boolean {
  const t = text.trimStart();
  if (t.length > MAX_SVG) return false;
  const head = t.slice(0, 512).toLowerCase();
  return head.startsWith('<svg') || ((head.startsWith('<?xml') || head.startsWith('<!--')) && head.includes('<svg'));
}

/** A data: URL of the SVG text (UTF-8, base64). */
export function svgDataUrl(text: string): string {
  const bytes = new TextEncoder().encode(text.trim());
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return `data:image/svg+xml;base64,${btoa(bin)}`;
}

export function ToolResult({ text }: { text: string }) {
  if (isSvg(text)) {
    return (
      <div data-testid="tool-result" data-kind="svg">
        <img class="tool-drawing" src={svgDataUrl(text)} alt="The drawing the tool returned" />
        <details>
          <summary class="small">Its SVG text</summary>
          <pre>{text}</pre>
        </details>
      </div>
    );
  }
  return <pre data-testid="tool-result">{text}</pre>;
}
