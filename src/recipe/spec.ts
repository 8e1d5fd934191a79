// Merge-method declarations as pure data: which parameters a method takes (global or per model), their types,
// defaults and ranges, and its input contract. Recipes are validated against these; `weightkit methods` and the
// docs print them. Imports nothing but types; src/merge implements methods that carry a MethodSpec.

export type ParamValue = number | boolean | string;

/** Resolved parameter values by name. */
export type Params = Readonly<Record<string, ParamValue>>;

export interface ParamSpec {
  readonly name: string;
  readonly type: 'number' | 'boolean' | 'string';
  /** allowed strings for type 'string' */
  readonly choices?: readonly string[];
  /** default value; undefined with required=false means "unset" (the method decides) */
  readonly default?: ParamValue;
  readonly required?: boolean;
  readonly min?: number;
  readonly max?: number;
  /** min/max are exclusive bounds */
  readonly exclusiveMin?: boolean;
  readonly exclusiveMax?: boolean;
  /** integer-valued number */
  readonly integer?: boolean;
  readonly description: string;
}

export interface MethodSpec {
  readonly name: string;
  /** 'required': base_model must be given; 'optional': used when given; 'none': not used (error if given);
   *  'input': a given base is merged as one more input (mergekit's linear/karcher behaviour) */
  readonly base: 'required' | 'optional' | 'none' | 'input';
  /** non-base models: minimum and maximum count (max undefined = unbounded) */
  readonly minModels: number;
  readonly maxModels?: number;
  /** parameters that apply to the whole tensor (top-level/slice `parameters`; cannot vary per model) */
  readonly params: readonly ParamSpec[];
  /** per-model parameters (models[i].parameters, sources[i].parameters; may also be set at slice/top level) */
  readonly modelParams: readonly ParamSpec[];
  readonly summary: string;
  /** formula in one paragraph */
  readonly formula: string;
  readonly reference: string;
  /** where weightkit deliberately differs from mergekit */
  readonly differences?: string;
  /** randomness: uses the recipe seed */
  readonly random?: boolean;
  /**
   * An embedding whose vocabulary differs is cut to the base's shape (mergekit's task-vector family: the deltas are
   * taken against the base); other methods cut every input to the common top-left block.
   */
  readonly vocabToBase?: boolean;
  /**
   * Plan-time checks that involve several parameters of one tensor, or one parameter across the tensors (before any
   * tensor data is read): each problem names the parameter whose recipe position is reported (of model `model`, or a
   * tensor-level one). `state` lives for one plan, across its tensors.
   */
  readonly checkParams?: (tensor: TensorParams, state: Map<string, unknown>) => readonly ParamProblem[];
}

/** One tensor's resolved parameters, as MethodSpec.checkParams sees them. */
export interface TensorParams {
  readonly tensor: string;
  readonly params: Params;
  /** per non-base input of the tensor */
  readonly modelParams: readonly Params[];
  /** each input's model (an index into the plan's models: the same model across tensors) */
  readonly models: readonly number[];
}

/** A problem found by MethodSpec.checkParams. */
export interface ParamProblem {
  readonly param: string;
  /** the input's index in TensorParams.modelParams; undefined: a tensor-level parameter */
  readonly model?: number;
  readonly message: string;
  /** RECIPE_PARAM_RANGE unless said */
  readonly code?: 'RECIPE_PARAM_RANGE' | 'RECIPE_PARAM_SCOPE';
}
