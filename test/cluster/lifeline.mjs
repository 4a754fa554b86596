// Preloaded (`--import`) into the coordinator processes the cluster suites spawn: when the test
// runner that spawned the process goes away without stopping it (a crash, a killed worker), its
// stdin pipe closes and the process dies with it, instead of living on against a deleted database.
// Nothing else in the process is touched.
process.stdin.on('end', () => process.kill(process.pid, 'SIGKILL'));
process.stdin.on('error', () => process.kill(process.pid, 'SIGKILL'));
process.stdin.resume();
// The pipe must not keep the process alive: a coordinator that finished shutting down still exits.
process.stdin.unref();
