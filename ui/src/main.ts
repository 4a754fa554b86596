/**
 * The Run inspector's shell: routes the URL hash to a page, stops the previous page's streams and
 * timers on every change, asks for a token when the coordinator answers 401, and offers to forget
 * the token.
 */
import { Api } from './api.js';
import { h, replace } from './dom.js';
import { parseRoute } from './routes.js';
import { runPage } from './views/run.js';
import { type PageContext, runsPage } from './views/runs.js';
import { renderTokenForm } from './views/token.js';

const main = document.getElementById('main')!;
const announcer = document.getElementById('announcer')!;
const authControls = document.getElementById('auth-controls')!;
const api = new Api();
let stop: () => void = () => {};
let askingForToken = false;

const context: PageContext = {
  api,
  announce(message) {
    // Cleared first so that the same message twice is announced twice.
    announcer.textContent = '';
    setTimeout(() => {
      announcer.textContent = message;
    }, 50);
  },
};

function renderAuthControls(): void {
  replace(
    authControls,
    api.token
      ? h(
          'button',
          {
            type: 'button',
            onclick: () => {
              api.forgetToken();
              context.announce('The token was forgotten');
              show();
            },
          },
          'Forget token',
        )
      : null,
  );
}

function show(): void {
  const route = parseRoute(location.hash);
  if (!route) return;
  stop();
  stop = () => {};
  askingForToken = false;
  renderAuthControls();
  switch (route.page) {
    case 'runs':
      document.title = 'Runs · Run inspector';
      stop = runsPage(main, context, route.filters);
      break;
    case 'run':
      document.title = `Run ${route.runId} · Run inspector`;
      stop = runPage(main, context, route.runId);
      break;
    case 'not_found':
      document.title = 'Not found · Run inspector';
      replace(main, h('h1', {}, 'Page not found'), h('p', {}, h('a', { href: '#/runs' }, 'All Runs')));
      break;
    default: {
      const never: never = route;
      throw new Error(`unknown route ${JSON.stringify(never)}`);
    }
  }
}

api.onUnauthorized = (message) => {
  if (askingForToken) return;
  askingForToken = true;
  stop();
  stop = () => {};
  document.title = 'Sign in · Run inspector';
  renderTokenForm(main, api, message, () => {
    context.announce('Token saved for this tab');
    show();
  });
  renderAuthControls();
};

// The skip link moves focus without touching the hash, which names the page.
document.querySelector('[data-skip]')?.addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', () => {
  show();
  // A new page: reading starts at its top, as after a page load.
  if (parseRoute(location.hash)) main.focus();
});
show();
