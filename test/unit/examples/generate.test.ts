import { generateDemoData, seededRandom } from '../../../examples/lead-scoring/generate';

describe('generateDemoData', () => {
  it('gives the same data for the same seed and other data for another seed', () => {
    const a = generateDemoData({ leads: 200, customers: 100, seed: 7 });
    const b = generateDemoData({ leads: 200, customers: 100, seed: 7 });
    const c = generateDemoData({ leads: 200, customers: 100, seed: 8 });
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    expect(a.leads).toHaveLength(200);
    expect(a.customers).toHaveLength(100);
  });

  it('matches about matchRate of the leads to customers, with case and space variants', () => {
    const { leads, customers } = generateDemoData({ leads: 2_000, customers: 500, matchRate: 0.4 });
    const matched = leads.filter((l) => l.Email && /customer\d+@example\.com/i.test(l.Email));
    expect(matched.length / leads.length).toBeGreaterThan(0.35);
    expect(matched.length / leads.length).toBeLessThan(0.45);
    expect(matched.some((l) => l.Email === l.Email?.toUpperCase())).toBe(true);
    // Salesforce refuses e-mails with surrounding spaces: only the data lake has them.
    expect(leads.every((l) => l.Email === null || l.Email === l.Email.trim())).toBe(true);
    expect(customers.some((c) => c.email !== null && c.email !== c.email.trim())).toBe(true);
    expect(customers.some((c) => c.email !== null && c.email !== c.email.toLowerCase())).toBe(true);
  });

  it('only uses Status values that the restricted picklist allows', () => {
    const allowed = new Set([
      'Open - Not Contacted',
      'Working - Contacted',
      'Closed - Converted',
      'Closed - Not Converted',
    ]);
    const { leads } = generateDemoData({ leads: 500, customers: 10 });
    expect(leads.every((l) => allowed.has(l.Status))).toBe(true);
  });

  it('marks the leads of the converted status converted, as Salesforce does, and only those', () => {
    const { leads } = generateDemoData({ leads: 500, customers: 10 });
    expect(leads.some((l) => l.IsConverted)).toBe(true);
    expect(leads.every((l) => l.IsConverted === (l.Status === 'Closed - Converted'))).toBe(true);
  });
});

describe('seededRandom', () => {
  it('stays within [0, 1)', () => {
    const r = seededRandom(1);
    for (let i = 0; i < 10_000; i++) {
      const x = r();
      expect(x >= 0 && x < 1).toBe(true);
    }
  });
});
