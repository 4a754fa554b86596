/**
 * The API explorer's own look: title, logo, favicon and a few styles over swagger-ui's. The mark is
 * a Run's tree (a root NodeRun and its children); everything is inline, nothing is fetched from
 * elsewhere.
 */

export const EXPLORER_TITLE = 'ARP Run Coordinator — API';

const MARK = `
  <path d="M20 11 L10 29 M20 11 L30 29" stroke="#7fd4c8" stroke-width="2.5" stroke-linecap="round"/>
  <circle cx="20" cy="10" r="6" fill="#2bb3a3"/>
  <circle cx="10" cy="30" r="5" fill="#f2b84b"/>
  <circle cx="30" cy="30" r="5" fill="#e8eef2"/>`;

/** The topbar logo: the mark and the project's name, light on the dark topbar. */
export const LOGO_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="300" height="40" viewBox="0 0 300 40" role="img" aria-label="ARP Run Coordinator">
  <title>ARP Run Coordinator</title>${MARK}
  <text x="46" y="27" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" font-size="20" fill="#ffffff"><tspan font-weight="700">ARP</tspan> Run Coordinator</text>
</svg>
`;

/** The mark alone on a dark tile, for the browser tab. */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" viewBox="0 0 40 40">
  <rect width="40" height="40" rx="8" fill="#1f2a30"/>${MARK}
</svg>
`;

/** Small changes to swagger-ui's stylesheet: the topbar in the mark's colours. */
export const THEME_CSS = `
.swagger-ui .topbar { background-color: #1f2a30; }
.swagger-ui .topbar .download-url-wrapper .select-label { color: #e8eef2; }
.swagger-ui .topbar .download-url-wrapper .select-label select { border-color: #2bb3a3; }
.swagger-ui .topbar-wrapper a.link img { height: 40px; width: auto; }
`;
