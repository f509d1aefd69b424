/**
 * A role started by `tamp train --local` ends when its launcher does: a
 * launcher killed with SIGKILL (a closed terminal, the OOM killer) has no
 * chance to stop its children, and a parameter server left behind would
 * listen for good. The launcher names itself in TAMP_LAUNCHER_PID; the
 * child watches its IPC channel ('disconnect' fires when the parent is
 * gone) and, should the channel be missing, polls its parent pid.
 */

/** The environment variable the launcher sets to its own pid in each child. */
export const LAUNCHER_PID_ENV = 'TAMP_LAUNCHER_PID';

const POLL_MS = 500;

/**
 * When the environment names a launcher, exit (code 1) as soon as it is gone.
 * Returns a function that stops watching; does nothing without the variable.
 */
export function exitWithLauncher(env: NodeJS.ProcessEnv = process.env, onGone: (message: string) => void = () => {}): () => void {
  const raw = env[LAUNCHER_PID_ENV];
  if (raw === undefined || raw === '') return () => {};
  const launcher = Number(raw);
  const gone = (how: string) => {
    try {
      onGone(`the launcher (pid ${launcher}) is gone (${how}); exiting`);
    } finally {
      process.exit(1);
    }
  };
  const onDisconnect = () => gone('its IPC channel closed');
  if (process.send !== undefined) process.once('disconnect', onDisconnect);
  // process.ppid becomes another process (init or a subreaper) once the parent dies.
  const timer = setInterval(() => {
    if (process.ppid !== launcher) gone(`parent pid is now ${process.ppid}`);
  }, POLL_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    process.off('disconnect', onDisconnect);
  };
}
