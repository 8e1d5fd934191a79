// Errors are data: every failure weightkit reports is a WeightkitError with a code from the closed ErrorCode
// list and a `where` naming the file, tensor, byte offset or recipe position at fault. Importable everywhere;
// imports nothing. Rendering (text, JSON, exit codes) belongs to src/cli.

/** Every error code weightkit can produce. Grouped by the module that raises it. */
export const ERROR_CODES = [
  // safetensors layout (one per broken invariant)
  'ST_FILE_TOO_SMALL', // file shorter than the 8-byte header length prefix
  'ST_HEADER_TOO_SMALL', // declared header length < 2
  'ST_HEADER_TOO_LARGE', // declared header length > 100 MB
  'ST_HEADER_OUT_OF_FILE', // declared header length runs past the end of the file
  'ST_HEADER_NOT_UTF8',
  'ST_HEADER_NOT_JSON',
  'ST_HEADER_NOT_OBJECT', // JSON is valid but not an object, or an entry is not an object
  'ST_INVALID_ENTRY', // entry lacks dtype/shape/data_offsets or has extra/wrongly-typed keys
  'ST_UNKNOWN_DTYPE',
  'ST_INVALID_SHAPE', // not an array of non-negative safe integers, or numel overflows
  'ST_INVALID_OFFSETS', // data_offsets not [begin, end] safe integers with begin <= end
  'ST_OFFSET_OUT_OF_BOUNDS', // data_offsets past the end of the data area
  'ST_SIZE_MISMATCH', // end - begin != numel * bits / 8
  'ST_GAP', // a hole between consecutive tensors (or before the first)
  'ST_OVERLAP', // two tensors share bytes
  'ST_DATA_SIZE_MISMATCH', // data area is longer than the tensors cover
  'ST_DUPLICATE_NAME',
  'ST_INVALID_METADATA', // __metadata__ not a string -> string map
  'ST_INDEX_INVALID', // model.safetensors.index.json malformed
  'ST_SHARD_MISSING', // weight_map names a shard file that does not exist
  'ST_SHARD_TENSOR_MISSING', // weight_map names a tensor its shard does not hold
  'ST_SHARD_DUPLICATE', // the same tensor stored in two shards
  // ONNX
  'ONNX_PARSE', // truncated or malformed protobuf
  'ONNX_UNSUPPORTED_DTYPE',
  'ONNX_INVALID_TENSOR', // bad dims, missing data, typed field length mismatch
  'ONNX_RAW_DATA_LENGTH', // raw_data length != numel * bytes
  'ONNX_EXTERNAL_ESCAPE', // external data location outside the model folder
  'ONNX_EXTERNAL_MISSING', // external data file does not exist
  'ONNX_EXTERNAL_SHORT', // external data file shorter than offset + length
  'ONNX_EXTERNAL_INVALID', // bad offset/length/location keys
  'ONNX_DUPLICATE_INITIALIZER',
  'ONNX_TOO_LARGE', // an inline (single-protobuf) model would exceed the 2 GB protobuf limit
  // checkpoint-level (any format)
  'CKPT_NOT_FOUND', // path does not exist
  'CKPT_UNKNOWN_FORMAT', // neither safetensors nor ONNX
  'TENSOR_NOT_FOUND',
  'TENSOR_SHAPE_MISMATCH',
  'TENSOR_DTYPE_MISMATCH',
  'TENSOR_ROW_RANGE', // invalid row range for a ranged read
  'TENSOR_TOO_LARGE', // a single tensor beyond what one typed array can hold
  'DTYPE_UNSUPPORTED', // a conversion that is not defined (e.g. to BOOL from float)
  // output
  'OUT_EXISTS',
  'OUT_INVALID',
  'OUT_WRITTEN_TWICE', // a streaming writer got the same tensor twice
  'OUT_INCOMPLETE', // a streaming writer was closed before every declared tensor was written
  'IO_ERROR', // system-level read/write failure
  'INTERRUPTED', // the user stopped the command (Ctrl-C); nothing was published
  // recipes (YAML syntax, schema, parameters; every problem carries file:line:col)
  'RECIPE_INVALID', // aggregate: the recipe has one or more problems (listed in `problems`)
  'RECIPE_NOT_FOUND',
  'RECIPE_TOO_LARGE', // a recipe file beyond MAX_RECIPE_BYTES
  'RECIPE_YAML', // YAML syntax error
  'RECIPE_NOT_MAPPING', // a document that is not a key/value mapping
  'RECIPE_UNKNOWN_KEY',
  'RECIPE_MISSING_KEY',
  'RECIPE_TYPE', // a value of the wrong type
  'RECIPE_CONFLICT', // keys that exclude each other (models and slices ...)
  'RECIPE_UNKNOWN_METHOD',
  'RECIPE_UNKNOWN_PARAM',
  'RECIPE_PARAM_SCOPE', // a global parameter set per model
  'RECIPE_PARAM_RANGE',
  'RECIPE_PARAM_REQUIRED',
  'RECIPE_BAD_FILTER', // invalid `re:` regular expression
  'RECIPE_BASE_REQUIRED',
  'RECIPE_BASE_NOT_ALLOWED',
  'RECIPE_MODEL_COUNT',
  'RECIPE_MODEL_NOT_FOUND', // a local model path that does not exist
  'RECIPE_REMOTE_MODEL', // a Hugging Face id: weightkit does not download
  'RECIPE_UNSUPPORTED', // a mergekit feature weightkit does not support yet
  'RECIPE_LAYER_RANGE',
  'RECIPE_WEIGHT_SUM_ZERO',
  'RECIPE_TOKENIZER', // a tokenizer_source with no tokenizer files to copy
  'RECIPE_DUPLICATE_NAME', // two documents of a multi-document recipe with the same name
  'RECIPE_CYCLE', // multi-document stages that depend on each other
  // stored vectors (task, time, robustness vectors and signatures)
  'VECTOR_INVALID', // not a weightkit vector file, or its encoding metadata is malformed
  'VECTOR_BASE_MISMATCH', // a vector made on a different base (fingerprint) than the one given
  'VECTOR_EXPRESSION', // a `vector combine` expression that does not parse or is not linear
  'VECTOR_NOT_FINITE', // NaN or infinity where a finite value is required (quantisation, sparsification, SVD merges)
  'VECTOR_UNDO_MISMATCH', // an undo record that does not belong to this model/vector/scale
  // evaluation (datasets, models run through ONNX Runtime)
  'EVAL_DATA', // a dataset file that is missing a tensor, malformed, or not a supported format
  'EVAL_SHAPE', // data whose shape or dtype does not fit the model's input
  'EVAL_LABEL_RANGE', // labels outside [0, classes) of the model's output
  'EVAL_MODEL', // a model ONNX Runtime cannot load or run (with its message)
  // command line
  'USAGE',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Where an error happened; every field optional, the renderer prints what is present. */
export interface Where {
  file?: string;
  tensor?: string;
  byteOffset?: number;
  line?: number; // 1-based
  col?: number; // 1-based
  path?: string; // recipe path, e.g. "models[1].parameters.density"
}

export interface WeightkitErrorOptions {
  where?: Where;
  cause?: unknown;
  hint?: string;
}

export class WeightkitError extends Error {
  readonly code: ErrorCode;
  readonly where: Where;
  readonly hint?: string;
  constructor(code: ErrorCode, message: string, options: WeightkitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.where = options.where ?? {};
    if (options.hint !== undefined) this.hint = options.hint;
  }

  toJSON(): { name: string; code: ErrorCode; message: string; where: Where; hint?: string } {
    const out: { name: string; code: ErrorCode; message: string; where: Where; hint?: string } = {
      name: this.name,
      code: this.code,
      message: this.message,
      where: this.where,
    };
    if (this.hint !== undefined) out.hint = this.hint;
    return out;
  }
}

/** A checkpoint or data file that does not satisfy its format's invariants. */
export class FormatError extends WeightkitError {}
/** A recipe that fails to parse or validate. */
export class RecipeError extends WeightkitError {}

/** Every problem of a recipe at once (code RECIPE_INVALID); each problem is a RecipeError with its position. */
export class RecipeProblems extends RecipeError {
  readonly problems: readonly RecipeError[];
  constructor(file: string, problems: readonly RecipeError[]) {
    const n = problems.length;
    super('RECIPE_INVALID', `${file}: ${n} problem${n === 1 ? '' : 's'} in recipe`, { where: { file } });
    this.problems = problems;
  }

  override toJSON(): ReturnType<WeightkitError['toJSON']> & { problems: object[] } {
    return { ...super.toJSON(), problems: this.problems.map((p) => p.toJSON()) };
  }
}
/** A plan that cannot be built from a valid recipe (shapes, missing tensors, output folder). */
export class PlanError extends WeightkitError {}
/** An evaluation that cannot run (data, model inputs). */
export class EvalError extends WeightkitError {}
/** A stored vector that is malformed or does not fit the model it is used with. */
export class VectorError extends WeightkitError {}
/** Bad command-line or API arguments. */
export class UsageError extends WeightkitError {}
/** A system-level I/O failure (permissions, disk full) wrapped with the file it concerns. */
export class IoError extends WeightkitError {}

export function isWeightkitError(e: unknown): e is WeightkitError {
  return e instanceof WeightkitError;
}

/** Wrap a Node system error (ENOENT, EACCES, ENOSPC ...) into a typed error naming the file. */
export function wrapIoError(e: unknown, file: string, action: string): WeightkitError {
  if (e instanceof WeightkitError) return e;
  const errno = (e as { code?: unknown })?.code;
  if (errno === 'ENOENT') {
    return new IoError('CKPT_NOT_FOUND', `${action}: no such file or folder`, { where: { file }, cause: e });
  }
  const detail = e instanceof Error ? e.message : String(e);
  return new IoError('IO_ERROR', `${action}: ${detail}`, { where: { file }, cause: e });
}

/**
 * A JS allocation that failed for its size (a typed array longer than V8 allows, an ArrayBuffer the heap cannot
 * give) as TENSOR_TOO_LARGE at `where` (the tensor and file being processed); undefined for any other error.
 */
export function allocationError(e: unknown, where: Where): WeightkitError | undefined {
  if (!(e instanceof Error) || e.name !== 'RangeError' || !/Invalid typed array length|Array buffer allocation failed|Invalid array buffer length|Invalid array length/.test(e.message)) return undefined;
  const what = where.tensor !== undefined ? `tensor '${where.tensor}'` : 'a tensor';
  return new PlanError('TENSOR_TOO_LARGE', `${what} needs a buffer larger than this runtime can allocate (${e.message})`, {
    where,
    hint: 'weightkit streams tensors in rows along their first dimension; a single row (or, for the methods that hold a 2-D tensor whole, the whole tensor) must fit one typed array of at most 2^31 - 1 elements',
    cause: e,
  });
}
