// Time limit of one infra test: real servers and real synth take longer than jest's 5 s default.
jest.setTimeout(180_000);
