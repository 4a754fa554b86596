/** The help texts: the overview (`arp-rc --help`) and each command's (`arp-rc <command> --help`). */
import type { Command } from './command.js';

export const DEFAULT_URL = 'http://127.0.0.1:8081';

export const GLOBAL_HELP = `Global options:
  --url URL        the Run Coordinator (env RC_URL; default ${DEFAULT_URL})
  --token TOKEN    send "Authorization: Bearer TOKEN" (env RC_TOKEN)
  --timeout SECS   give up on a call after this long (default 30; follow streams may stay quiet longer)
  --json           print the service's JSON instead of tables and trees
  -h, --help       show help`;

export const EXIT_HELP = `Exit codes:
  0    success
  1    the service answered with an error (its code and message, and the request id, on stderr)
  2    usage error: unknown command, bad flags or bad JSON; nothing was sent
  3    cannot reach the service: connection refused, DNS failure, reset or timeout
  4    runs start --wait: the Run ended failed
  5    runs start --wait: the Run ended canceled
  70   a bug in arp-rc (an unexpected error; please report it)
  127  bin/arp-rc.mjs: the CLI is not built (run npm run build)
  130  interrupted with Ctrl-C`;

export function synopsis(command: Command): string {
  return ['arp-rc', ...command.words, ...command.args, '[options]'].join(' ');
}

export function overview(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => [...c.words, ...c.args].join(' ').length));
  const lines = commands.map((c) => `  ${[...c.words, ...c.args].join(' ').padEnd(width)}  ${c.summary}`);
  return `arp-rc: command-line client of the ARP Run Coordinator

Usage: arp-rc <command> [arguments] [options]

Commands:
${lines.join('\n')}

${GLOBAL_HELP}

Environment: RC_URL, RC_TOKEN, NO_COLOR (colour is used only when stdout is a terminal).

${EXIT_HELP}

"arp-rc <command> --help" describes a command.
`;
}

export function commandHelp(command: Command): string {
  return `Usage: ${synopsis(command)}

${command.summary}

${command.help.trim()}

${GLOBAL_HELP}

${EXIT_HELP}
`;
}

/** `arp-rc runs --help`: the commands of one group. */
export function groupHelp(group: string, commands: readonly Command[]): string {
  const mine = commands.filter((c) => c.words[0] === group);
  const width = Math.max(...mine.map((c) => synopsis(c).length));
  return `Usage: arp-rc ${group} <command>

${mine.map((c) => `  ${synopsis(c).padEnd(width)}  ${c.summary}`).join('\n')}

"arp-rc ${group} <command> --help" describes a command.
`;
}
