// The look the proxy's pages share (the transition page, the forwarded port
// page): the palette, light and dark, the centred card and the brand line.
// Each page adds its own rules after it.
export const PAGE_LOOK_CSS = `
:root {
  color-scheme: light dark;
  --bg: #f3f5f8; --card: #ffffff; --text: #17202c; --muted: #4e5968; --line: #d9dee5;
  --line-strong: #b9c1cc; --accent: #2352c4; --accent-soft: #edf2fd; --panel: #f6f8fa;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #101419; --card: #181e26; --text: #e7ebf0; --muted: #a6b0bd; --line: #2d3541;
    --line-strong: #4a5566; --accent: #86a8ff; --accent-soft: #1c2638; --panel: #131920;
  }
}
*, *::before, *::after { box-sizing: border-box; }
html, body { margin: 0; }
body {
  min-height: 100vh; min-height: 100dvh;
  display: flex; flex-direction: column; align-items: center; justify-content: center;
  gap: 16px; padding: 24px 16px;
  background: var(--bg); color: var(--text);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial, sans-serif;
  -webkit-text-size-adjust: 100%;
}
main {
  width: 100%; max-width: 560px; padding: 32px;
  background: var(--card); border: 1px solid var(--line); border-radius: 16px;
  box-shadow: 0 1px 2px rgb(16 24 40 / 4%), 0 12px 32px rgb(16 24 40 / 7%);
}
.brand {
  display: flex; align-items: center; gap: 8px; margin: 0 0 12px;
  color: var(--muted); font-size: 14px; font-weight: 600; letter-spacing: .02em;
}
.brand svg { fill: var(--accent); }
`;

/** A dashboard page's document start, up to </head>: viewport, noindex, no favicon request, its CSS under `nonce`, then `extra` tags. */
export function dashboardHead(title: string, nonce: string, css: string, extra = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${title}</title>
<link rel="icon" href="data:,">
${extra}<style nonce="${nonce}">${PAGE_LOOK_CSS}${css}</style>
</head>`;
}
