import { UsageError, type Command } from '../cli-common';

/** `roundtrip emulate salesforce|athena …`: each emulator owns its own argument parsing. */
export const emulate: Command = async (argv) => {
  const [which, ...rest] = argv;
  switch (which) {
    case 'salesforce':
      return (await import('../../emulators/salesforce/cli')).runSalesforceEmulatorCli(rest);
    case 'athena':
      return (await import('../../emulators/athena/cli')).runAthenaEmulatorCli(rest);
    default:
      throw new UsageError(
        `emulate: expected "salesforce" or "athena", got ${which ? `"${which}"` : 'nothing'}`,
      );
  }
};
