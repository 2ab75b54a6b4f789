// The page frame shared by the training report and the attention pages: CSS and the HTML shell.
import { escapeXml } from './charts.js';

export const BASE_CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;background:#f6f7f9;margin:0}
header{background:#fff;border-bottom:1px solid #ddd;padding:16px 24px}
h1{margin:0 0 4px;font-size:22px}
h2{font-size:18px;margin:0 0 12px}
h3{font-size:15px;margin:12px 0 6px}
nav a{margin-right:14px;color:#1f5fa8;text-decoration:none}
main{max-width:1200px;margin:0 auto;padding:8px 24px 40px}
section{background:#fff;border:1px solid #e2e2e2;border-radius:6px;padding:16px 20px;margin:16px 0;overflow-x:auto}
`;

export interface PageSection {
  id: string;
  title: string;
  /** Trusted HTML. */
  html: string;
}

/** A complete HTML page: header (title, subtitle, a section index when there is more than one section) and sections. */
export function htmlPage(o: { title: string; subtitle: string; css: string; generator: string; sections: PageSection[] }): string {
  const nav = o.sections.length > 1 ? `<nav>${o.sections.map((s) => `<a href="#${s.id}">${escapeXml(s.title)}</a>`).join('')}</nav>` : '';
  const body = o.sections.map((s) => `<section id="${s.id}"><h2>${escapeXml(s.title)}</h2>\n${s.html}\n</section>`).join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="${escapeXml(o.generator)}">
<title>${escapeXml(o.title)}</title>
<style>${o.css}</style>
</head>
<body>
<header><h1>${escapeXml(o.title)}</h1><p class="muted">${escapeXml(o.subtitle)}</p>${nav}</header>
<main>
${body}
</main>
</body>
</html>
`;
}
