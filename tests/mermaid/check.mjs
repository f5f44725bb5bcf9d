// Parses each file named on the command line with Mermaid itself (the
// library GitHub renders diagrams with), in a DOM made by jsdom; prints
// `ok FILE TYPE` or `FAIL FILE ERROR` per file; exit 1 when any failed.
import { JSDOM } from 'jsdom';
import fs from 'fs';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
globalThis.DOMParser = dom.window.DOMParser;
globalThis.Element = dom.window.Element;

const mermaid = (await import('mermaid')).default;
mermaid.initialize({ startOnLoad: false });
let bad = 0;
for (const f of process.argv.slice(2)) {
  const text = fs.readFileSync(f, 'utf8');
  try {
    const r = await mermaid.parse(text);
    console.log('ok', f, r.diagramType);
  } catch (e) {
    bad++;
    console.log('FAIL', f, String(e.message || e).replace(/\n/g, ' ').slice(0, 600));
  }
}
process.exit(bad ? 1 : 0);
