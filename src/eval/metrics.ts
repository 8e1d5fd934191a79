// Classification metrics from logits [N, C] and integer labels: accuracy, top-k accuracy, mean cross-entropy
// (stable log-softmax), mean prediction entropy, per-class accuracy, predictions; and the comparison with a
// reference model's predictions (negative flip rate, agreement). Pure functions in f64; no node: imports, no ORT.

/** Accuracy on the examples of one class (NaN when the class has no example). */
export interface ClassAccuracy {
  readonly class: number;
  readonly count: number;
  readonly correct: number;
  readonly accuracy: number;
}

export interface ClassificationMetrics {
  readonly count: number;
  readonly classes: number;
  /** The k used for top-k accuracy (the requested k capped at the class count). */
  readonly topK: number;
  readonly accuracy: number;
  readonly topKAccuracy: number;
  /** Mean over examples of -log softmax(logits)[label], in nats. */
  readonly meanCrossEntropy: number;
  /** Mean over examples of -Σ p log p of softmax(logits), in nats. */
  readonly meanEntropy: number;
  readonly perClass: readonly ClassAccuracy[];
  /** argmax of each row (the first index among equal maxima). */
  readonly predictions: Int32Array;
}

export interface ReferenceComparison {
  readonly count: number;
  /** Examples the reference got right and this model gets wrong. */
  readonly negativeFlips: number;
  /** Examples the reference got wrong and this model gets right. */
  readonly positiveFlips: number;
  /** negativeFlips / N. */
  readonly negativeFlipRate: number;
  /** Fraction of examples where both models predict the same class. */
  readonly agreement: number;
  readonly referenceAccuracy: number;
}

/** log Σ exp(row), computed as m + log Σ exp(x - m) with m the row maximum. */
export function logSumExp(logits: ArrayLike<number>, offset: number, classes: number): number {
  let m = -Infinity;
  for (let j = 0; j < classes; j++) {
    const v = logits[offset + j]!;
    if (v > m) m = v;
  }
  if (m === -Infinity || m === Infinity) return m;
  let s = 0;
  for (let j = 0; j < classes; j++) s += Math.exp(logits[offset + j]! - m);
  return m + Math.log(s);
}

/** Entropy (nats) of softmax of one row: Σ p_j (lse - l_j), skipping p_j = 0. */
function rowEntropy(logits: ArrayLike<number>, offset: number, classes: number, lse: number): number {
  let h = 0;
  for (let j = 0; j < classes; j++) {
    const d = lse - logits[offset + j]!;
    const p = Math.exp(-d);
    if (p > 0) h += p * d;
  }
  return h;
}

/** Per-example entropy of the predicted distribution (nats), e.g. for entropy-based interpolation (DaWin). */
export function predictionEntropies(logits: ArrayLike<number>, classes: number): Float64Array {
  const n = Math.floor(logits.length / classes);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * classes;
    out[i] = rowEntropy(logits, o, classes, logSumExp(logits, o, classes));
  }
  return out;
}

/** Index of the largest value in a row (first among ties; NaN never wins unless the row is all NaN: then 0). */
export function argmaxRow(logits: ArrayLike<number>, offset: number, classes: number): number {
  let best = 0;
  let bv = logits[offset]!;
  for (let j = 1; j < classes; j++) {
    const v = logits[offset + j]!;
    if (v > bv || (Number.isNaN(bv) && !Number.isNaN(v))) {
      bv = v;
      best = j;
    }
  }
  return best;
}

/**
 * Streaming accumulation of the metrics over batches (the same numbers as one call on the concatenation). Labels
 * must already be known to lie in [0, classes); `add` throws a RangeError otherwise.
 */
export class MetricsAccumulator {
  private n = 0;
  private correct = 0;
  private correctK = 0;
  private ce = 0;
  private entropy = 0;
  private readonly classCount: Float64Array;
  private readonly classCorrect: Float64Array;
  private preds: Int32Array;
  readonly topK: number;

  constructor(
    readonly classes: number,
    topK = 5,
    capacity = 0,
  ) {
    if (!Number.isSafeInteger(classes) || classes < 1) throw new RangeError(`classes must be a positive integer, got ${classes}`);
    if (!Number.isSafeInteger(topK) || topK < 1) throw new RangeError(`topK must be a positive integer, got ${topK}`);
    this.topK = Math.min(topK, classes);
    this.classCount = new Float64Array(classes);
    this.classCorrect = new Float64Array(classes);
    this.preds = new Int32Array(Math.max(16, capacity));
  }

  /** Add `labels.length` rows of logits (row-major [rows, classes]). */
  add(logits: ArrayLike<number>, labels: ArrayLike<number>): void {
    const c = this.classes;
    const rows = labels.length;
    if (logits.length !== rows * c) throw new RangeError(`logits hold ${logits.length} values, expected ${rows} x ${c}`);
    if (this.n + rows > this.preds.length) {
      const grown = new Int32Array(Math.max(this.n + rows, this.preds.length * 2));
      grown.set(this.preds.subarray(0, this.n));
      this.preds = grown;
    }
    const k = this.topK;
    for (let i = 0; i < rows; i++) {
      const y = labels[i]!;
      if (!(Number.isInteger(y) && y >= 0 && y < c)) throw new RangeError(`label ${y} at row ${this.n + i} is outside [0, ${c})`);
      const o = i * c;
      const pred = argmaxRow(logits, o, c);
      this.preds[this.n + i] = pred;
      const ly = logits[o + y]!;
      // rank of the label in (logit desc, index asc) order
      let rank = 0;
      for (let j = 0; j < c; j++) {
        const v = logits[o + j]!;
        if (v > ly || (v === ly && j < y)) rank++;
      }
      if (rank < k && !Number.isNaN(ly)) this.correctK++;
      this.classCount[y]! += 1;
      if (pred === y) {
        this.correct++;
        this.classCorrect[y]! += 1;
      }
      const lse = logSumExp(logits, o, c);
      this.ce += lse - ly;
      this.entropy += rowEntropy(logits, o, c, lse);
    }
    this.n += rows;
  }

  get count(): number {
    return this.n;
  }

  finish(): ClassificationMetrics {
    const n = this.n;
    const perClass: ClassAccuracy[] = [];
    for (let j = 0; j < this.classes; j++) {
      const count = this.classCount[j]!;
      const correct = this.classCorrect[j]!;
      perClass.push({ class: j, count, correct, accuracy: count > 0 ? correct / count : NaN });
    }
    return {
      count: n,
      classes: this.classes,
      topK: this.topK,
      accuracy: this.correct / n,
      topKAccuracy: this.correctK / n,
      meanCrossEntropy: this.ce / n,
      meanEntropy: this.entropy / n,
      perClass,
      predictions: this.preds.slice(0, n),
    };
  }
}

/** All metrics of logits [N, classes] (row-major) against labels [N]. */
export function classificationMetrics(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  classes: number,
  options: { topK?: number } = {},
): ClassificationMetrics {
  const acc = new MetricsAccumulator(classes, options.topK ?? 5, labels.length);
  acc.add(logits, labels);
  return acc.finish();
}

/** Compare this model's predictions with a reference model's on the same labelled examples. */
export function compareWithReference(
  predictions: ArrayLike<number>,
  referencePredictions: ArrayLike<number>,
  labels: ArrayLike<number>,
): ReferenceComparison {
  const n = labels.length;
  if (predictions.length !== n || referencePredictions.length !== n) {
    throw new RangeError(`lengths differ: ${predictions.length} predictions, ${referencePredictions.length} reference, ${n} labels`);
  }
  let neg = 0;
  let pos = 0;
  let agree = 0;
  let refRight = 0;
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    const a = predictions[i]!;
    const r = referencePredictions[i]!;
    if (a === r) agree++;
    if (r === y) refRight++;
    if (r === y && a !== y) neg++;
    if (r !== y && a === y) pos++;
  }
  return {
    count: n,
    negativeFlips: neg,
    positiveFlips: pos,
    negativeFlipRate: neg / n,
    agreement: agree / n,
    referenceAccuracy: refRight / n,
  };
}
