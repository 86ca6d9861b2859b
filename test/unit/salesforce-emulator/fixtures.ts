/** Shared setup for the emulator's data unit tests: the repo's describes, loaded as modules (no disk I/O in tests). */
import account from '../../../emulators/salesforce/describes/Account.json';
import contact from '../../../emulators/salesforce/describes/Contact.json';
import lead from '../../../emulators/salesforce/describes/Lead.json';
import { normalizeDescribes } from '../../../emulators/salesforce/describe';
import type { ObjectDescribe } from '../../../emulators/salesforce/describe';
import { SalesforceStore } from '../../../emulators/salesforce/store';
import type { SalesforceStoreOptions } from '../../../emulators/salesforce/store';

/** Fresh copies of the Lead, Account and Contact describes. */
export function repoDescribes(): ObjectDescribe[] {
  return normalizeDescribes(structuredClone([lead, account, contact]), 'describes');
}

/** A store over the repo's describes. */
export function makeStore(options: Partial<SalesforceStoreOptions> = {}): SalesforceStore {
  return new SalesforceStore({ describes: repoDescribes(), ...options });
}

/** A valid new lead. */
export function newLead(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { LastName: 'Lovelace', Company: 'Analytical Engines', ...overrides };
}
