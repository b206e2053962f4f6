/**
 * Errors of the local Lambda API, in AWS's shape: the status, `x-amzn-ErrorType`, and a JSON body
 * `{"Type":"User","message":...}` (`Message` for the exceptions AWS spells that way), which the AWS SDK turns
 * into its named exceptions (`ResourceConflictException`, ...).
 */

/** One failed request to the Lambda API. */
export class LambdaApiError extends Error {
  override readonly name = 'LambdaApiError' as const;
  /** The HTTP status. */
  readonly status: number;
  /** The exception's name, e.g. `ResourceNotFoundException`. */
  readonly type: string;

  constructor(status: number, type: string, message: string) {
    super(message);
    this.status = status;
    this.type = type;
  }

  /** The response body. */
  toJSON(): Record<string, string> {
    const key = this.type === 'ResourceNotFoundException' || this.type === 'ServiceException' ? 'Message' : 'message';
    return { Type: this.status >= 500 ? 'Service' : 'User', [key]: this.message };
  }
}

/** The errors the local endpoint answers, by AWS's names. */
export const apiErrors = {
  notFound: (message: string) => new LambdaApiError(404, 'ResourceNotFoundException', message),
  conflict: (message: string) => new LambdaApiError(409, 'ResourceConflictException', message),
  invalidParameter: (message: string) => new LambdaApiError(400, 'InvalidParameterValueException', message),
  /** A request that breaks a constraint of Lambda's API model (an enum, a length, a range). */
  validation: (message: string) => new LambdaApiError(400, 'ValidationException', message),
  invalidContent: (message: string) => new LambdaApiError(400, 'InvalidRequestContentException', message),
  preconditionFailed: (message: string) => new LambdaApiError(412, 'PreconditionFailedException', message),
  tooLarge: (message: string) => new LambdaApiError(413, 'RequestTooLargeException', message),
  /** A request body over an operation's limit (Invoke's payload has its own, `tooLarge`). */
  entityTooLarge: (message: string) => new LambdaApiError(413, 'RequestEntityTooLargeException', message),
  tooManyRequests: (message: string) => new LambdaApiError(429, 'TooManyRequestsException', message),
  unknownOperation: (message: string) => new LambdaApiError(404, 'UnknownOperationException', message),
  service: (message: string) => new LambdaApiError(500, 'ServiceException', message),
} as const;

/** The message Lambda gives while a function is being created or updated. */
export function updateInProgress(arn: string): LambdaApiError {
  return apiErrors.conflict(
    `The operation cannot be performed at this time. An update is in progress for resource: ${arn}`,
  );
}
