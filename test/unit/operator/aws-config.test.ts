// `drawbridge controller --config`: what the Helm chart writes parses, defaults are applied once, and
// every mistake names the field and what to write instead.
import { describe, expect, it } from 'vitest';
import { parseControllerConfig } from '../../../src/api/controller-config.js';

const parse = (text: string) => parseControllerConfig(text, 'controller.yaml');
const error = (text: string) => {
  try {
    parse(text);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('parsed');
};

describe('controller config', () => {
  it('applies defaults to what the chart writes by default', () => {
    expect(parse('aws:\n  iamBootstrap: print\n  matchers: []\n')).toEqual({
      aws: {
        matchers: [],
        namespaces: [],
        discoveryInterval: '5m',
        iamBootstrap: 'print',
        managedUsers: { rotationInterval: '15m' },
        enableIamAuth: false,
      },
    });
  });

  it('treats an empty file and a file without aws as "AWS off"', () => {
    expect(parse('')).toEqual({});
    expect(parse('# nothing\n')).toEqual({});
  });

  it('reads every setting', () => {
    const cfg = parse(`aws:
  namespace: aws-dbs
  discoveryInterval: 30s
  iamBootstrap: attach
  enableIamAuth: true
  managedUsers: { rotationInterval: 5m }
  matchers:
    - types: [rds, aurora]
      regions: [eu-west-1]
      tags: { env: [prod, staging] }
      assumeRoleArn: arn:aws:iam::123456789012:role/discovery
      externalId: ext-1
`);
    expect(cfg.aws).toMatchObject({
      namespace: 'aws-dbs',
      discoveryInterval: '30s',
      iamBootstrap: 'attach',
      enableIamAuth: true,
      managedUsers: { rotationInterval: '5m' },
    });
    expect(cfg.aws!.matchers[0]).toEqual({
      types: ['rds', 'aurora'],
      regions: ['eu-west-1'],
      tags: { env: ['prod', 'staging'] },
      assumeRoleArn: 'arn:aws:iam::123456789012:role/discovery',
      externalId: 'ext-1',
    });
  });

  it('defaults a matcher without tags to every database', () => {
    const cfg = parse('aws:\n  matchers: [{ types: [redshift], regions: [us-east-1] }]\n');
    expect(cfg.aws!.matchers[0]!.tags).toEqual({ '*': '*' });
  });

  it.each([
    ['awz: {}\n', /\(document\): unknown key\(s\) "awz"; allowed: aws/],
    [
      'aws:\n  matchers: [{ types: [rds], regions: [us-east-1], tag: { env: prod } }]\n',
      /aws\.matchers\.0: unknown key\(s\) "tag"; allowed: types, regions, tags, assumeRoleArn, externalId/,
    ],
    ['aws:\n  iamBootstrap: yes\n', /aws\.iamBootstrap: .*"off"\|"print"\|"attach"/],
    ['aws:\n  discoveryInterval: 10ms\n', /aws\.discoveryInterval: must be at least 1s/],
    ['aws:\n  discoveryInterval: often\n', /aws\.discoveryInterval: must be a duration such as "8h"/],
    [
      'aws:\n  managedUsers: { rotationInterval: 10s }\n',
      /aws\.managedUsers\.rotationInterval: must be at least 1m/,
    ],
    ['aws:\n  matchers: [{ types: [mysql], regions: [us-east-1] }]\n', /aws\.matchers\.0\.types\.0: .*"rds"/],
    ['aws:\n  matchers: [{ types: [rds], regions: [] }]\n', /aws\.matchers\.0\.regions: /],
    [
      'aws:\n  matchers: [{ types: [rds], regions: [x], assumeRoleArn: discovery }]\n',
      /aws\.matchers\.0\.assumeRoleArn: must be an IAM role ARN/,
    ],
    ['aws:\n  namespace: Not_A_Name\n', /aws\.namespace: must be a lowercase DNS name/],
    ['aws: [\n', /controller.yaml: YAML syntax error/],
  ])('rejects %j naming the field', (text, message) => {
    const msg = error(text);
    expect(msg).toMatch(/^controller.yaml/);
    expect(msg).toMatch(message);
  });
});
