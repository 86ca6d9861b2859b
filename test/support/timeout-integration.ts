// Time limit of one integration test: real servers and real synth take longer than jest's 5 s default.
jest.setTimeout(120_000);
