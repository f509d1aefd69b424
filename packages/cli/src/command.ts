import type { OptionSpecs, ParsedOptions, PositionalSpec, GLOBAL_OPTIONS } from './args.js';
import type { Output } from './output.js';

export interface CommandContext<O extends OptionSpecs> {
  readonly options: ParsedOptions<O & typeof GLOBAL_OPTIONS>;
  readonly positionals: readonly string[];
  readonly out: Output;
  /** The argv that invoked this command after its name (cluster launchers pass it on). */
  readonly argv: readonly string[];
}

/** What a command hands back: the JSON result and how to show it to a person. */
export interface CommandResult<R = unknown> {
  readonly result: R;
  readonly text: string;
}

export interface Command<O extends OptionSpecs = OptionSpecs> {
  readonly name: string;
  readonly summary: string;
  readonly positionals: readonly PositionalSpec[];
  readonly options: O;
  run(context: CommandContext<O>): Promise<CommandResult>;
}

/** Declare a command; keeps the option types flowing into run(). */
export function defineCommand<const O extends OptionSpecs>(command: Command<O>): Command<O> {
  return command;
}
