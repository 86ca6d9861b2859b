/**
 * The deployment options (issue 6): `deployment`, `schedule.deadLetterQueue` and the Athena
 * workgroup, bucket and scoping options. They carry no defaults in the parsed config: the CDK
 * stack applies them (lib/pipeline-stack.ts), so a config without them parses as before.
 */
import { parseConfig } from '../../../lambdas/config';
import { ConfigError, type ConfigIssue } from '../../../lambdas/shared/errors';

type Raw = Record<string, unknown>;

const KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

/** A valid `deployment.network` without a proxy. */
const NETWORK = { vpcId: 'vpc-12345678', subnetIds: ['subnet-12345678'], securityGroupIds: ['sg-12345678'] };

/** The start of the error of proxy credentials whose secret the proxy would stand before. */
const SECRETS_MANAGER_NOT_DIRECT =
  'expected Secrets Manager among the hosts reached directly, since the functions read the proxy\'s credentials (credentialsSecret) before they can use it: give the VPC an interface endpoint for Secrets Manager and add ".amazonaws.com" or "secretsmanager.<region>.amazonaws.com", got ';

function valid(): Raw {
  return {
    name: 'lead-scoring',
    schedule: { cron: '0 2 * * ? *' },
    athena: { database: 'marketing', outputLocation: 's3://results-bucket/athena/' },
    postgres: { secret: 'roundtrip/postgres' },
    extract: [{ from: 'athena', query: 'SELECT email FROM customers', table: 'athena_customers' }],
  };
}

function problems(value: unknown): ConfigIssue[] {
  try {
    parseConfig(value);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.issues];
    throw error;
  }
  throw new Error('the config was accepted');
}

const issue = (path: string, message: string): ConfigIssue => ({ path, message });

describe('deployment options of the pipeline config', () => {
  it('are kept as given', () => {
    const deployment = {
      network: {
        vpcId: 'vpc-0a1b2c3d4e5f67890',
        subnetIds: ['subnet-0a1b2c3d4e5f67890', 'subnet-12345678'],
        securityGroupIds: ['sg-0a1b2c3d4e5f67890'],
        proxy: {
          url: 'https://proxy.corp.example:8443',
          noProxy: ['.amazonaws.com', 'db.internal:5432', '10.1.2.3', '*'],
          credentialsSecret: 'roundtrip/proxy',
        },
      },
      kmsKeyArn: KEY_ARN,
      logRetentionDays: 90,
    };
    const athena = {
      database: 'marketing',
      workgroup: 'roundtrip',
      createWorkgroup: true,
      resultsExpireDays: 3,
      resultsKmsKeyArn: KEY_ARN,
      tables: ['customers', 'orders'],
      dataLocations: ['s3://data-lake/customers/', 's3://data-lake/orders/'],
      dataKmsKeyArns: [KEY_ARN],
    };
    const config = parseConfig({
      ...valid(),
      schedule: { cron: '0 2 * * ? *', deadLetterQueue: false },
      athena,
      deployment,
    });
    expect(config.deployment).toEqual(deployment);
    expect(config.athena).toEqual({
      ...athena,
      catalog: 'AwsDataCatalog',
      results: 's3',
      queryTimeoutMinutes: 32,
    });
    expect(config.schedule).toEqual({
      cron: '0 2 * * ? *',
      timezone: 'UTC',
      enabled: true,
      deadLetterQueue: false,
    });
  });

  it('get no defaults in the parsed config (the stack applies them)', () => {
    const config = parseConfig(valid());
    expect(config.deployment).toBeUndefined();
    expect(config.schedule).not.toHaveProperty('deadLetterQueue');
    expect(config.athena).not.toHaveProperty('createWorkgroup');
    expect(config.athena).not.toHaveProperty('resultsExpireDays');
  });

  it('accept proxy credentials when Secrets Manager is reached directly, by any entry that covers it', () => {
    for (const noProxy of [
      ['.amazonaws.com'],
      ['amazonaws.com'],
      ['*.amazonaws.com'],
      ['db.internal', 'secretsmanager.eu-west-1.amazonaws.com'],
      ['.eu-central-1.amazonaws.com:443'],
      ['.amazonaws.com.cn'],
      ['*'],
    ]) {
      const proxy = { url: 'http://proxy.corp.example:3128', noProxy, credentialsSecret: 'roundtrip/proxy' };
      expect(
        parseConfig({ ...valid(), deployment: { network: { ...NETWORK, proxy } } }).deployment?.network
          ?.proxy,
      ).toEqual(proxy);
    }
  });

  it('accept a multi-Region KMS key', () => {
    const kmsKeyArn = 'arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab';
    expect(parseConfig({ ...valid(), deployment: { kmsKeyArn } }).deployment).toEqual({ kmsKeyArn });
  });

  const cases: [string, (c: Raw) => void, ConfigIssue[]][] = [
    [
      'a VPC id that is not one',
      (c) =>
        (c.deployment = {
          network: { vpcId: 'vpc-xyz', subnetIds: ['subnet-12345678'], securityGroupIds: ['sg-12345678'] },
        }),
      [issue('deployment.network.vpcId', 'expected a VPC id such as "vpc-0a1b2c3d4e5f67890", got "vpc-xyz"')],
    ],
    [
      'a network without subnets or security groups',
      (c) => (c.deployment = { network: { vpcId: 'vpc-12345678', subnetIds: [] } }),
      [
        issue('deployment.network.subnetIds', 'expected a list of subnet ids, got an empty list'),
        issue('deployment.network.securityGroupIds', 'expected a list of security group ids, got nothing'),
      ],
    ],
    [
      'a subnet listed twice and a security group id of the wrong kind',
      (c) =>
        (c.deployment = {
          network: {
            vpcId: 'vpc-12345678',
            subnetIds: ['subnet-12345678', 'subnet-12345678'],
            securityGroupIds: ['subnet-12345678'],
          },
        }),
      [
        issue(
          'deployment.network.subnetIds[1]',
          'expected each subnet once, got "subnet-12345678" again (also at deployment.network.subnetIds[0])',
        ),
        issue(
          'deployment.network.securityGroupIds[0]',
          'expected a security group id such as "sg-0a1b2c3d4e5f67890", got "subnet-12345678"',
        ),
      ],
    ],
    [
      'a proxy URL with credentials, one of another scheme, and a NO_PROXY entry that is not a host',
      (c) =>
        (c.deployment = {
          network: {
            ...NETWORK,
            proxy: {
              url: 'http://bob:hunter2@proxy.corp.example:3128',
              noProxy: ['.amazonaws.com', 'https://x.test'],
            },
          },
        }),
      // (The password never shown: config messages redact it.)
      [
        issue(
          'deployment.network.proxy.url',
          'expected a proxy URL without credentials, such as "http://proxy.corp.example:3128" (http or https, a host, a port), got "http://bob:[REDACTED]@proxy.corp.example:3128"',
        ),
        issue(
          'deployment.network.proxy.noProxy[1]',
          'expected a host, an IP address or a domain such as ".amazonaws.com", optionally with ":port", got "https://x.test"',
        ),
      ],
    ],
    [
      'proxy credentials read through the proxy they are for (Secrets Manager not reached directly)',
      (c) =>
        (c.deployment = {
          network: {
            ...NETWORK,
            proxy: {
              url: 'http://proxy.corp.example:3128',
              noProxy: ['db.internal', 'athena.eu-west-1.amazonaws.com'],
              credentialsSecret: 'roundtrip/proxy',
            },
          },
        }),
      [
        issue(
          'deployment.network.proxy.noProxy',
          `${SECRETS_MANAGER_NOT_DIRECT}["db.internal","athena.eu-west-1.amazonaws.com"]`,
        ),
      ],
    ],
    [
      'proxy credentials without any NO_PROXY, and a secret reference that is not one',
      (c) =>
        (c.deployment = {
          network: {
            ...NETWORK,
            proxy: { url: 'http://proxy.corp.example:3128', credentialsSecret: 'bob:hunter2' },
          },
        }),
      [
        issue(
          'deployment.network.proxy.credentialsSecret',
          'expected a Secrets Manager secret name or ARN, got "bob:hunter2"',
        ),
        issue('deployment.network.proxy.noProxy', `${SECRETS_MANAGER_NOT_DIRECT}nothing`),
      ],
    ],
    [
      'a SOCKS proxy (the functions tunnel through HTTP CONNECT only)',
      (c) =>
        (c.deployment = {
          network: {
            ...NETWORK,
            proxy: { url: 'socks5://proxy.corp.example:1080' },
          },
          kmsKeyArn: KEY_ARN,
        }),
      [
        issue(
          'deployment.network.proxy.url',
          'expected a proxy URL without credentials, such as "http://proxy.corp.example:3128" (http or https, a host, a port), got "socks5://proxy.corp.example:1080"',
        ),
      ],
    ],
    [
      'a KMS alias instead of a key ARN',
      (c) => (c.deployment = { kmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:alias/roundtrip' }),
      [
        issue(
          'deployment.kmsKeyArn',
          'expected a KMS key ARN such as "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", got "arn:aws:kms:eu-west-1:123456789012:alias/roundtrip"',
        ),
      ],
    ],
    [
      'a log retention CloudWatch does not offer',
      (c) => (c.deployment = { logRetentionDays: 10 }),
      [
        issue(
          'deployment.logRetentionDays',
          'expected a number of days CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653), got 10',
        ),
      ],
    ],
    [
      'an unknown deployment key',
      (c) => (c.deployment = { vpc: 'vpc-12345678' }),
      [issue('deployment.vpc', 'unknown key (expected one of: network, kmsKeyArn, logRetentionDays)')],
    ],
    [
      'a dead-letter queue switch that is not a boolean',
      (c) => (c.schedule = { cron: '0 2 * * ? *', deadLetterQueue: 'yes' }),
      [issue('schedule.deadLetterQueue', 'expected true or false, got "yes"')],
    ],
    [
      'a workgroup to create named "primary" by default',
      (c) => (c.athena = { database: 'marketing', createWorkgroup: true }),
      [
        issue(
          'athena.workgroup',
          'expected the name of the workgroup to create, not "primary" (every account already has it), got nothing (the default is "primary")',
        ),
      ],
    ],
    [
      'a workgroup to create with an output location and a cross-account role',
      (c) =>
        (c.athena = {
          database: 'marketing',
          workgroup: 'primary',
          createWorkgroup: true,
          outputLocation: 's3://results-bucket/athena/',
          roleArn: 'arn:aws:iam::210987654321:role/lake-reader',
        }),
      [
        issue(
          'athena.workgroup',
          'expected the name of the workgroup to create, not "primary" (every account already has it), got "primary"',
        ),
        issue(
          'athena.outputLocation',
          'expected nothing when "createWorkgroup" is true (the created workgroup enforces its result location in the stack\'s results bucket), got "s3://results-bucket/athena/"',
        ),
        issue(
          'athena.createWorkgroup',
          'expected false or nothing with "roleArn" (a cross-account role queries in a workgroup of the other account), got true',
        ),
      ],
    ],
    [
      'a results expiry without a created workgroup',
      (c) => (c.athena = { database: 'marketing', resultsExpireDays: 7 }),
      [
        issue(
          'athena.resultsExpireDays',
          'expected nothing unless "createWorkgroup" is true (only the stack\'s own results bucket expires results), got 7',
        ),
      ],
    ],
    [
      'a results expiry out of range',
      (c) =>
        (c.athena = { database: 'marketing', workgroup: 'rt', createWorkgroup: true, resultsExpireDays: 0 }),
      [issue('athena.resultsExpireDays', 'expected a whole number of days from 1 to 3650, got 0')],
    ],
    [
      'a results key that is not a KMS key ARN',
      (c) => (c.athena = { database: 'marketing', resultsKmsKeyArn: 'alias/athena-results' }),
      [
        issue(
          'athena.resultsKmsKeyArn',
          'expected a KMS key ARN such as "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", got "alias/athena-results"',
        ),
      ],
    ],
    [
      'a results key with a cross-account role',
      (c) =>
        (c.athena = {
          database: 'marketing',
          roleArn: 'arn:aws:iam::210987654321:role/lake-reader',
          resultsKmsKeyArn: KEY_ARN,
        }),
      [
        issue(
          'athena.resultsKmsKeyArn',
          'expected nothing with "roleArn" (the queries run as that role, which is the one to be allowed the key, in its own account), got "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34…" (75 characters)',
        ),
      ],
    ],
    [
      'a table listed twice and a data location that is not an S3 URL',
      (c) =>
        (c.athena = {
          database: 'marketing',
          tables: ['customers', 'Customers'],
          dataLocations: ['https://data-lake.s3.amazonaws.com/customers/'],
        }),
      [
        issue(
          'athena.tables[1]',
          'expected each table once, got "Customers" again (also at athena.tables[0])',
        ),
        issue(
          'athena.dataLocations[0]',
          'expected an S3 URL such as "s3://data-lake/customers/", got "https://data-lake.s3.amazonaws.com/customers/"',
        ),
      ],
    ],
    [
      'a data key that is not a KMS key ARN, and one named twice',
      (c) =>
        (c.athena = {
          database: 'marketing',
          dataKmsKeyArns: ['alias/data-lake', KEY_ARN, KEY_ARN],
        }),
      [
        issue(
          'athena.dataKmsKeyArns[0]',
          'expected a KMS key ARN such as "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", got "alias/data-lake"',
        ),
        issue(
          'athena.dataKmsKeyArns[2]',
          'expected each key once, got "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34…" (75 characters) again (also at athena.dataKmsKeyArns[1])',
        ),
      ],
    ],
    [
      'data keys with a cross-account role',
      (c) =>
        (c.athena = {
          database: 'marketing',
          roleArn: 'arn:aws:iam::210987654321:role/lake-reader',
          dataKmsKeyArns: [KEY_ARN],
        }),
      [
        issue(
          'athena.dataKmsKeyArns',
          'expected nothing with "roleArn" (the queries read the data as that role, which is the one to be allowed the keys, in its own account), got "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34…" (75 characters)',
        ),
      ],
    ],
    [
      'tables and data locations with a cross-account role, which the stack would grant nothing of',
      (c) =>
        (c.athena = {
          database: 'marketing',
          roleArn: 'arn:aws:iam::210987654321:role/lake-reader',
          tables: ['customers'],
          dataLocations: ['s3://data-lake/customers/'],
        }),
      [
        issue(
          'athena.tables',
          'expected nothing with "roleArn" (the queries read the Glue tables as that role, whose own policy in the other account names what it may read; the stack grants nothing in this account), got "customers"',
        ),
        issue(
          'athena.dataLocations',
          'expected nothing with "roleArn" (the queries read the data as that role, whose own policy in the other account names what it may read; the stack grants nothing in this account), got "s3://data-lake/customers/"',
        ),
      ],
    ],
  ];

  it.each(cases)('refuses %s', (_title, breakIt, expected) => {
    const config = valid();
    breakIt(config);
    expect(problems(config)).toEqual(expected);
  });
});
