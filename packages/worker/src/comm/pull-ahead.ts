/**
 * Pulls one after another, with one started ahead on request (the comm
 * thread's, comm-thread.ts). When the link, not compute, bounds a step, the
 * training loop waits for each pull, and the next pull used to leave only
 * after that answer had crossed to the training thread and it had asked
 * again: two thread hand-offs, a few milliseconds a step (more on busy
 * cores) during which the link carried nothing. A pull asked `ahead` starts
 * the next pull the moment its own answer is in; the training loop's next
 * request `take`s it.
 *
 * Pulls never overlap: a pull's answer can be a change against the one
 * before (int8 and int4 pulls), so each starts only after the previous one
 * ended, whichever way it ended.
 */

export interface PullTurn {
  /** Accept the pull started ahead, if one is held for the same options; otherwise pull afresh. */
  readonly take?: boolean;
  /** Once this pull's answer is in, start the next one and hold it for the next request that takes it. */
  readonly ahead?: boolean;
}

export class PullAhead<O, T> {
  /** The pull started ahead, and the options it was made with (as a key). */
  private held: { readonly key: string; readonly result: Promise<T> } | undefined;
  /** The last pull started, settled or not: the next starts after it. */
  private last: Promise<unknown> = Promise.resolve();
  /** Pulls started ahead, and how many of them a request took. */
  readonly counts = { ahead: 0, taken: 0 };

  constructor(
    private readonly pullOnce: (options: O) => Promise<T>,
    private readonly keyOf: (options: O) => string = stableKey,
  ) {}

  pull(options: O, turn: PullTurn = {}): Promise<T> {
    const key = this.keyOf(options);
    const held = this.held;
    this.held = undefined;
    let result: Promise<T>;
    if (held !== undefined && turn.take === true && held.key === key) {
      result = held.result;
      this.counts.taken++;
    } else {
      // A pull held and not taken (other options, or a fresh pull asked for) is dropped once it ends.
      result = this.start(options);
    }
    if (turn.ahead !== true) return result;
    return result.then((answer) => {
      // Started before the answer is handed on: the link is busy again at once.
      this.held = { key, result: this.start(options) };
      this.counts.ahead++;
      return answer;
    });
  }

  /** Start a pull after the previous one has ended. */
  private start(options: O): Promise<T> {
    const result = this.last.then(
      () => this.pullOnce(options),
      () => this.pullOnce(options),
    );
    // Observed here: a pull started ahead that nobody takes must not be an unhandled rejection.
    this.last = result.catch(() => undefined);
    return result;
  }
}

/** The options as a key (bigints included). */
function stableKey(options: unknown): string {
  return JSON.stringify(options, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}
