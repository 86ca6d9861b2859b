/**
 * An Athena workgroup that enforces its result location in an encrypted results bucket: public
 * access blocked, TLS only, result files expiring. Queries cannot choose another location or
 * turn encryption off (`EnforceWorkGroupConfiguration`).
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** The prefix of result files in the results bucket. */
export const RESULTS_PREFIX = 'results/';

/** Props of {@link ResultsWorkgroup}. */
export interface ResultsWorkgroupProps {
  /** The workgroup's name. */
  readonly name: string;
  /** Days after which result files are deleted. */
  readonly resultsExpireDays: number;
  /** A description for the console. */
  readonly description: string;
  /**
   * Encrypt the result files with this customer managed KMS key (SSE-KMS) instead of S3's own
   * keys (SSE-S3). @default SSE-S3
   */
  readonly kmsKeyArn?: string;
}

/** The workgroup and its results bucket. */
export class ResultsWorkgroup extends Construct {
  readonly bucket: s3.Bucket;
  readonly workgroup: athena.CfnWorkGroup;
  /** `s3://<bucket>/results/` */
  readonly outputLocation: string;

  constructor(scope: Construct, id: string, props: ResultsWorkgroupProps) {
    super(scope, id);
    this.bucket = new s3.Bucket(this, 'Results', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        {
          id: 'expire-query-results',
          prefix: RESULTS_PREFIX,
          expiration: Duration.days(props.resultsExpireDays),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
      // Kept when the stack is deleted: CloudFormation cannot delete a bucket that still holds
      // result files (they live `resultsExpireDays`), so DESTROY made `cdk destroy` fail after
      // any recent run. Retained, the lifecycle rule empties it; delete it by hand when empty.
      // (autoDeleteObjects would add a custom-resource function to the stack for a cache.)
      removalPolicy: RemovalPolicy.RETAIN,
      autoDeleteObjects: false,
    });
    this.outputLocation = `s3://${this.bucket.bucketName}/${RESULTS_PREFIX}`;
    this.workgroup = new athena.CfnWorkGroup(this, 'Workgroup', {
      name: props.name,
      description: props.description,
      state: 'ENABLED',
      recursiveDeleteOption: true,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        resultConfiguration: {
          outputLocation: this.outputLocation,
          encryptionConfiguration: props.kmsKeyArn
            ? { encryptionOption: 'SSE_KMS', kmsKey: props.kmsKeyArn }
            : { encryptionOption: 'SSE_S3' },
        },
      },
    });
  }
}
