/**
 * The token form, shown when the coordinator answers 401: a bearer token (e.g. from the deployment's
 * OIDC provider) kept in this tab's sessionStorage only.
 */
import type { Api } from '../api.js';
import { h, replace } from '../dom.js';

export function renderTokenForm(main: HTMLElement, api: Api, reason: string, onToken: () => void): void {
  const input = h('input', {
    id: 'token-input',
    name: 'token',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
    'aria-describedby': 'token-help',
  });
  const form = h(
    'form',
    {
      className: 'token-form',
      onsubmit: (event: Event) => {
        event.preventDefault();
        if (!input.value.trim()) return;
        api.setToken(input.value);
        onToken();
      },
    },
    h('label', { for: 'token-input' }, 'Bearer token'),
    input,
    h('button', { type: 'submit', className: 'primary' }, 'Use token'),
  );
  replace(
    main,
    h('h1', {}, 'Sign in to the coordinator'),
    h(
      'p',
      { id: 'token-help' },
      'This coordinator requires a bearer token (a JWT from its identity provider). ',
      'The token is kept in this browser tab only, until the tab is closed or you choose “Forget token”, ',
      'and is sent to this coordinator only.',
    ),
    api.token
      ? h('p', { className: 'notice notice-error', role: 'alert' }, `The token was refused: ${reason}`)
      : null,
    form,
  );
  input.focus();
}
