;; SIMD kernels of the GTA merge engine (src/merge/methods/gta-kernels.ts runs them). Turned into
;; merge-kernels.generated.ts by test/merge/gta-wasm.test.ts (WEIGHTKIT_UPDATE_WASM=1), which also checks drift.
;; Each kernel performs the same IEEE operations in the same order as the JS kernels in gta-kernels.ts, so the
;; results are bit-identical to them (f32 sub, f64 promote/mul/add/div, round-to-nearest demote).
;;
;; Memory: imported (at least the 51 pages of fixed regions; never grown: growing would detach every view of it,
;; which slows all typed-array code of the isolate). An instance that backs an executor workspace (workspace.ts)
;; holds the executor's f32 buffers past the fixed regions, and the kernels then read those inputs in place
;; (pointer arguments $x, $b, $o); every delta is written to a model region ($d). Chunks of at most
;; CAP = 16384 elements:
;;   [0, 64K)                 base (f32)
;;   [64K, 128K)              out (f32)
;;   [128K + i*64K, ...)      model i (f32), i < 8: the input x_i, or its (masked) delta d_i
;;   [640K, 640K + 8*32)      per model i: sc_i as f64x2 at +0, w_i as f64x2 at +16
;;   [640K + 512, +256)       l1_random's lanes: 16 f64 of the norm before masking, then 16 of the norm after
;;   [640K + 1024, +32)       sum_out's input pointers (i32 per model)
;;   [640K + 1088, +16)       ties_out / sum_out: the last partial group of four outputs
;;   [768K, 1088K)            rank_into: keys, keys2, perm, tmp (u32/i32 each), four digit histograms (4 KiB)
;;   [1088K, 1152K)           rank_into's input (f32), [1152K, 1216K) its output ranks (i32)
;;   [1216K + s*128K, ...)    high-bits histogram slot s < 8 (u32 x 32768 by |d| bits >>> 16, see hist_high)
;;   [2240K + s*128K, ...)    slot s's inexact counts (delta_hist_inexact): 1M past the slot, same layout
;; Kernels may READ up to 3 elements past n (callers keep 16 bytes of memory after any input); delta_all and
;; delta_random WRITE up to 3 past n into their model region; ties_out and sum_out write exactly n outputs.
;; Inputs may also be BF16 bits (the executor's stored bits, see workspace.ts Bf16Inputs): with $bf = 1 the delta
;; kernels read x and b, ties_out its base, sum_out its base (and its inputs when $raw) as u16 and widen them
;; exactly (bits << 16) in the loop; the hot vector loops are written out once per input format.
(module
  (import "env" "memory" (memory 51))
  (export "memory" (memory 0))

  (global $ties (mut i32) (i32.const 0))

  (func (export "ties_left") (result i32) (global.get $ties))

  ;; Settle the f32 delta at $p: keep iff bits < |d| <= inf, or |d| == bits while a tie is left (element order);
  ;; a dropped delta becomes +0. Returns 1 if kept.
  (func $settle (param $p i32) (param $bits i32) (result i32)
    (local $u i32) (local $a i32) (local $keep i32)
    (local.set $u (i32.load (local.get $p)))
    (local.set $a (i32.and (local.get $u) (i32.const 0x7fffffff)))
    (local.set $keep
      (i32.and (i32.gt_s (local.get $a) (local.get $bits)) (i32.le_s (local.get $a) (i32.const 0x7f800000))))
    (if (i32.and (i32.eq (local.get $a) (local.get $bits)) (i32.gt_s (global.get $ties) (i32.const 0)))
      (then
        (local.set $keep (i32.const 1))
        (global.set $ties (i32.sub (global.get $ties) (i32.const 1)))))
    (i32.store (local.get $p) (i32.and (local.get $u) (i32.sub (i32.const 0) (local.get $keep))))
    (local.get $keep))

  ;; At $d: d = f32(x - b), magnitude-masked against $bits with a budget of $ties ties (read it back with
  ;; ties_left). Returns how many were kept. Four lanes at a time; a group holding a tie candidate while the
  ;; budget lasts is settled lane by lane, in order. $d may equal $x.
  (func (export "delta_mag") (param $x i32) (param $b i32) (param $d i32) (param $n i32) (param $bits i32)
    (param $ties i32) (param $bf i32)
    (result i32)
    (local $vend i32) (local $end i32) (local $kept i32) (local $stop i32) (local $sh i32) (local $st i32)
    (local $dv v128) (local $a v128) (local $keep v128) (local $bv v128) (local $acc v128) (local $abs v128)
    (local $inf v128)
    (global.set $ties (local.get $ties))
    (local.set $bv (i32x4.splat (local.get $bits)))
    (local.set $abs (i32x4.splat (i32.const 0x7fffffff)))
    (local.set $inf (i32x4.splat (i32.const 0x7f800000)))
    (local.set $sh (i32.sub (i32.const 2) (local.get $bf)))
    (local.set $st (i32.shl (i32.const 4) (local.get $sh)))
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (local.get $sh))))
    (local.set $vend (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (local.get $sh))))
    (if (local.get $bf)
      ;; the same loop specialised for BF16 inputs and for f32 inputs (no per-load branch)
      (then
        (block $vdone
          (loop $vnext
            (br_if $vdone (i32.ge_u (local.get $x) (local.get $vend)))
            (local.set $dv (f32x4.sub (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $x))) (i32.const 16)) (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $b))) (i32.const 16))))
            (local.set $a (v128.and (local.get $dv) (local.get $abs)))
            (if (i32.and (v128.any_true (i32x4.eq (local.get $a) (local.get $bv)))
                         (i32.gt_s (global.get $ties) (i32.const 0)))
              (then
                (v128.store (local.get $d) (local.get $dv))
                (local.set $stop (i32.add (local.get $d) (i32.const 16)))
                (loop $lane
                  (local.set $kept (i32.add (local.get $kept) (call $settle (local.get $d) (local.get $bits))))
                  (local.set $d (i32.add (local.get $d) (i32.const 4)))
                  (br_if $lane (i32.lt_u (local.get $d) (local.get $stop))))
                (local.set $x (i32.add (local.get $x) (local.get $st)))
                (local.set $b (i32.add (local.get $b) (local.get $st)))
                (br $vnext)))
            (local.set $keep
              (v128.and (i32x4.gt_s (local.get $a) (local.get $bv)) (i32x4.le_s (local.get $a) (local.get $inf))))
            (v128.store (local.get $d) (v128.and (local.get $dv) (local.get $keep)))
            (local.set $acc (i32x4.sub (local.get $acc) (local.get $keep)))
            (local.set $x (i32.add (local.get $x) (local.get $st)))
            (local.set $b (i32.add (local.get $b) (local.get $st)))
            (local.set $d (i32.add (local.get $d) (i32.const 16)))
            (br $vnext))))
      (else
        (block $vdone
          (loop $vnext
            (br_if $vdone (i32.ge_u (local.get $x) (local.get $vend)))
            (local.set $dv (f32x4.sub (v128.load (local.get $x)) (v128.load (local.get $b))))
            (local.set $a (v128.and (local.get $dv) (local.get $abs)))
            (if (i32.and (v128.any_true (i32x4.eq (local.get $a) (local.get $bv)))
                         (i32.gt_s (global.get $ties) (i32.const 0)))
              (then
                (v128.store (local.get $d) (local.get $dv))
                (local.set $stop (i32.add (local.get $d) (i32.const 16)))
                (loop $lane
                  (local.set $kept (i32.add (local.get $kept) (call $settle (local.get $d) (local.get $bits))))
                  (local.set $d (i32.add (local.get $d) (i32.const 4)))
                  (br_if $lane (i32.lt_u (local.get $d) (local.get $stop))))
                (local.set $x (i32.add (local.get $x) (local.get $st)))
                (local.set $b (i32.add (local.get $b) (local.get $st)))
                (br $vnext)))
            (local.set $keep
              (v128.and (i32x4.gt_s (local.get $a) (local.get $bv)) (i32x4.le_s (local.get $a) (local.get $inf))))
            (v128.store (local.get $d) (v128.and (local.get $dv) (local.get $keep)))
            (local.set $acc (i32x4.sub (local.get $acc) (local.get $keep)))
            (local.set $x (i32.add (local.get $x) (local.get $st)))
            (local.set $b (i32.add (local.get $b) (local.get $st)))
            (local.set $d (i32.add (local.get $d) (i32.const 16)))
            (br $vnext)))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (f32.store (local.get $d) (f32.sub (if (result f32) (local.get $bf) (then (f32.reinterpret_i32 (i32.shl (i32.load16_u (local.get $x)) (i32.const 16)))) (else (f32.load (local.get $x)))) (if (result f32) (local.get $bf) (then (f32.reinterpret_i32 (i32.shl (i32.load16_u (local.get $b)) (i32.const 16)))) (else (f32.load (local.get $b))))))
        (local.set $kept (i32.add (local.get $kept) (call $settle (local.get $d) (local.get $bits))))
        (local.set $x (i32.add (local.get $x) (i32.shr_u (local.get $st) (i32.const 2))))
        (local.set $b (i32.add (local.get $b) (i32.shr_u (local.get $st) (i32.const 2))))
        (local.set $d (i32.add (local.get $d) (i32.const 4)))
        (br $next)))
    (i32.add (local.get $kept)
      (i32.add
        (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
        (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc))))))

  ;; At $d: d = f32(x - b) (an unsparsified delta). Four lanes at a time, up to 3 elements past n.
  (func (export "delta_all") (param $x i32) (param $b i32) (param $d i32) (param $n i32) (param $bf i32)
    (local $end i32) (local $st i32)
    (local.set $st (i32.shl (i32.const 8) (i32.eqz (local.get $bf))))
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.sub (i32.const 2) (local.get $bf)))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (v128.store (local.get $d) (f32x4.sub (if (result v128) (local.get $bf) (then (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $x))) (i32.const 16))) (else (v128.load (local.get $x)))) (if (result v128) (local.get $bf) (then (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $b))) (i32.const 16))) (else (v128.load (local.get $b))))))
        (local.set $x (i32.add (local.get $x) (local.get $st)))
        (local.set $b (i32.add (local.get $b) (local.get $st)))
        (local.set $d (i32.add (local.get $d) (i32.const 16)))
        (br $next))))

;; TIES consensus over $m models' masked deltas, four elements (two f64x2 halves) at a time, all in registers:
  ;;   v_i = d_i * sc_i; S = ((0 + v_0) + v_1) + ...; agree_i = v_i > 0 where S >= 0, v_i < 0 elsewhere;
  ;;   M = 0 + sum of agreeing v_i, Z = 0 + sum of agreeing w_i (in model order, disagreeing terms add +0);
  ;;   out = f32(b + (M / (Z == 0 ? 1 : Z)) * lambda) if $divide, else f32(b + M * lambda),
  ;; with the base at $b and exactly n outputs written at $o (a last partial group goes through 656448).
  (func (export "ties_out") (param $m i32) (param $n i32) (param $b i32) (param $o i32) (param $divide i32)
    (param $lambda f64) (param $bf i32)
    (local $j i32) (local $jend i32) (local $p i32) (local $q i32) (local $pend i32) (local $jfull i32)
    (local $oa i32)
    (local $s0 v128) (local $s1 v128) (local $v0 v128) (local $v1 v128) (local $ge0 v128) (local $ge1 v128)
    (local $m0 v128) (local $m1 v128) (local $z0 v128) (local $z1 v128) (local $a0 v128) (local $a1 v128)
    (local $sc v128) (local $w v128) (local $lam v128) (local $zero v128) (local $one v128) (local $bv v128)
    (local.set $lam (f64x2.splat (local.get $lambda)))
    (local.set $zero (f64x2.splat (f64.const 0)))
    (local.set $one (f64x2.splat (f64.const 1)))
    (local.set $jend (i32.shl (local.get $n) (i32.const 2)))
    (local.set $jfull (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $pend (i32.add (i32.const 131072) (i32.shl (local.get $m) (i32.const 16))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $jend)))
        (local.set $oa (select (i32.add (local.get $o) (local.get $j)) (i32.const 656448)
          (i32.lt_u (local.get $j) (local.get $jfull))))
        ;; the weighted vote
        (local.set $s0 (local.get $zero))
        (local.set $s1 (local.get $zero))
        (local.set $p (i32.add (i32.const 131072) (local.get $j)))
        (local.set $q (i32.const 655360))
        (block $vdone
          (loop $vote
            (br_if $vdone (i32.ge_u (local.get $p) (local.get $pend)))
            (local.set $sc (v128.load (local.get $q)))
            (local.set $s0 (f64x2.add (local.get $s0)
              (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $p))) (local.get $sc))))
            (local.set $s1 (f64x2.add (local.get $s1)
              (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p))) (local.get $sc))))
            (local.set $p (i32.add (local.get $p) (i32.const 65536)))
            (local.set $q (i32.add (local.get $q) (i32.const 32)))
            (br $vote)))
        (local.set $ge0 (f64x2.ge (local.get $s0) (local.get $zero)))
        (local.set $ge1 (f64x2.ge (local.get $s1) (local.get $zero)))
        ;; the disjoint sums of the agreeing terms
        (local.set $m0 (local.get $zero))
        (local.set $m1 (local.get $zero))
        (local.set $z0 (local.get $zero))
        (local.set $z1 (local.get $zero))
        (local.set $p (i32.add (i32.const 131072) (local.get $j)))
        (local.set $q (i32.const 655360))
        (block $adone
          (loop $agreeing
            (br_if $adone (i32.ge_u (local.get $p) (local.get $pend)))
            (local.set $sc (v128.load (local.get $q)))
            (local.set $w (v128.load offset=16 (local.get $q)))
            (local.set $v0 (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $p))) (local.get $sc)))
            (local.set $v1 (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $p))) (local.get $sc)))
            (local.set $a0 (v128.bitselect (f64x2.gt (local.get $v0) (local.get $zero))
                                           (f64x2.lt (local.get $v0) (local.get $zero)) (local.get $ge0)))
            (local.set $a1 (v128.bitselect (f64x2.gt (local.get $v1) (local.get $zero))
                                           (f64x2.lt (local.get $v1) (local.get $zero)) (local.get $ge1)))
            (local.set $m0 (f64x2.add (local.get $m0) (v128.and (local.get $v0) (local.get $a0))))
            (local.set $m1 (f64x2.add (local.get $m1) (v128.and (local.get $v1) (local.get $a1))))
            (local.set $z0 (f64x2.add (local.get $z0) (v128.and (local.get $w) (local.get $a0))))
            (local.set $z1 (f64x2.add (local.get $z1) (v128.and (local.get $w) (local.get $a1))))
            (local.set $p (i32.add (local.get $p) (i32.const 65536)))
            (local.set $q (i32.add (local.get $q) (i32.const 32)))
            (br $agreeing)))
        (if (local.get $divide)
          (then
            (local.set $z0 (v128.bitselect (local.get $one) (local.get $z0) (f64x2.eq (local.get $z0) (local.get $zero))))
            (local.set $z1 (v128.bitselect (local.get $one) (local.get $z1) (f64x2.eq (local.get $z1) (local.get $zero))))
            (local.set $m0 (f64x2.div (local.get $m0) (local.get $z0)))
            (local.set $m1 (f64x2.div (local.get $m1) (local.get $z1)))))
        (local.set $bv (if (result v128) (local.get $bf)
          (then (i32x4.shl (i32x4.extend_low_i16x8_u
            (v128.load64_zero (i32.add (local.get $b) (i32.shr_u (local.get $j) (i32.const 1))))) (i32.const 16)))
          (else (v128.load (i32.add (local.get $b) (local.get $j))))))
        (v128.store64_lane 0 (local.get $oa)
          (f32x4.demote_f64x2_zero
            (f64x2.add (f64x2.promote_low_f32x4 (local.get $bv))
              (f64x2.mul (local.get $m0) (local.get $lam)))))
        (v128.store64_lane offset=8 0 (local.get $oa)
          (f32x4.demote_f64x2_zero
            (f64x2.add (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $bv) (local.get $bv)))
              (f64x2.mul (local.get $m1) (local.get $lam)))))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $next)))
    (call $tail (i32.add (local.get $o) (local.get $jfull)) (i32.and (local.get $n) (i32.const 3))))

  ;; ties_out for exactly three models, unrolled: each v_i = d_i * sc_i is computed once and kept for the vote and
  ;; the disjoint sums (same operations in the same order as ties_out, so the same bits).
  (func (export "ties_out3") (param $n i32) (param $b i32) (param $o i32) (param $divide i32) (param $lambda f64)
    (param $bf i32)
    (local $j i32) (local $jend i32) (local $jfull i32) (local $oa i32)
    (local $x0 v128) (local $x1 v128) (local $y0 v128) (local $y1 v128) (local $u0 v128) (local $u1 v128)
    (local $s0 v128) (local $s1 v128) (local $ge0 v128) (local $ge1 v128)
    (local $m0 v128) (local $m1 v128) (local $z0 v128) (local $z1 v128) (local $a0 v128) (local $a1 v128)
    (local $sc0 v128) (local $sc1 v128) (local $sc2 v128) (local $w0 v128) (local $w1 v128) (local $w2 v128)
    (local $lam v128) (local $zero v128) (local $one v128) (local $bv v128)
    (local.set $lam (f64x2.splat (local.get $lambda)))
    (local.set $zero (f64x2.splat (f64.const 0)))
    (local.set $one (f64x2.splat (f64.const 1)))
    (local.set $sc0 (v128.load (i32.const 655360)))
    (local.set $w0 (v128.load (i32.const 655376)))
    (local.set $sc1 (v128.load (i32.const 655392)))
    (local.set $w1 (v128.load (i32.const 655408)))
    (local.set $sc2 (v128.load (i32.const 655424)))
    (local.set $w2 (v128.load (i32.const 655440)))
    (local.set $jend (i32.shl (local.get $n) (i32.const 2)))
    (local.set $jfull (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $jend)))
        (local.set $oa (select (i32.add (local.get $o) (local.get $j)) (i32.const 656448)
          (i32.lt_u (local.get $j) (local.get $jfull))))
        (local.set $x0 (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero offset=131072 (local.get $j))) (local.get $sc0)))
        (local.set $x1 (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero offset=131080 (local.get $j))) (local.get $sc0)))
        (local.set $y0 (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero offset=196608 (local.get $j))) (local.get $sc1)))
        (local.set $y1 (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero offset=196616 (local.get $j))) (local.get $sc1)))
        (local.set $u0 (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero offset=262144 (local.get $j))) (local.get $sc2)))
        (local.set $u1 (f64x2.mul (f64x2.promote_low_f32x4 (v128.load64_zero offset=262152 (local.get $j))) (local.get $sc2)))
        (local.set $s0 (f64x2.add (f64x2.add (f64x2.add (local.get $zero) (local.get $x0)) (local.get $y0)) (local.get $u0)))
        (local.set $s1 (f64x2.add (f64x2.add (f64x2.add (local.get $zero) (local.get $x1)) (local.get $y1)) (local.get $u1)))
        (local.set $ge0 (f64x2.ge (local.get $s0) (local.get $zero)))
        (local.set $ge1 (f64x2.ge (local.get $s1) (local.get $zero)))
        ;; model 0
        (local.set $a0 (v128.bitselect (f64x2.gt (local.get $x0) (local.get $zero)) (f64x2.lt (local.get $x0) (local.get $zero)) (local.get $ge0)))
        (local.set $a1 (v128.bitselect (f64x2.gt (local.get $x1) (local.get $zero)) (f64x2.lt (local.get $x1) (local.get $zero)) (local.get $ge1)))
        (local.set $m0 (f64x2.add (local.get $zero) (v128.and (local.get $x0) (local.get $a0))))
        (local.set $m1 (f64x2.add (local.get $zero) (v128.and (local.get $x1) (local.get $a1))))
        (local.set $z0 (f64x2.add (local.get $zero) (v128.and (local.get $w0) (local.get $a0))))
        (local.set $z1 (f64x2.add (local.get $zero) (v128.and (local.get $w0) (local.get $a1))))
        ;; model 1
        (local.set $a0 (v128.bitselect (f64x2.gt (local.get $y0) (local.get $zero)) (f64x2.lt (local.get $y0) (local.get $zero)) (local.get $ge0)))
        (local.set $a1 (v128.bitselect (f64x2.gt (local.get $y1) (local.get $zero)) (f64x2.lt (local.get $y1) (local.get $zero)) (local.get $ge1)))
        (local.set $m0 (f64x2.add (local.get $m0) (v128.and (local.get $y0) (local.get $a0))))
        (local.set $m1 (f64x2.add (local.get $m1) (v128.and (local.get $y1) (local.get $a1))))
        (local.set $z0 (f64x2.add (local.get $z0) (v128.and (local.get $w1) (local.get $a0))))
        (local.set $z1 (f64x2.add (local.get $z1) (v128.and (local.get $w1) (local.get $a1))))
        ;; model 2
        (local.set $a0 (v128.bitselect (f64x2.gt (local.get $u0) (local.get $zero)) (f64x2.lt (local.get $u0) (local.get $zero)) (local.get $ge0)))
        (local.set $a1 (v128.bitselect (f64x2.gt (local.get $u1) (local.get $zero)) (f64x2.lt (local.get $u1) (local.get $zero)) (local.get $ge1)))
        (local.set $m0 (f64x2.add (local.get $m0) (v128.and (local.get $u0) (local.get $a0))))
        (local.set $m1 (f64x2.add (local.get $m1) (v128.and (local.get $u1) (local.get $a1))))
        (local.set $z0 (f64x2.add (local.get $z0) (v128.and (local.get $w2) (local.get $a0))))
        (local.set $z1 (f64x2.add (local.get $z1) (v128.and (local.get $w2) (local.get $a1))))
        (if (local.get $divide)
          (then
            (local.set $z0 (v128.bitselect (local.get $one) (local.get $z0) (f64x2.eq (local.get $z0) (local.get $zero))))
            (local.set $z1 (v128.bitselect (local.get $one) (local.get $z1) (f64x2.eq (local.get $z1) (local.get $zero))))
            (local.set $m0 (f64x2.div (local.get $m0) (local.get $z0)))
            (local.set $m1 (f64x2.div (local.get $m1) (local.get $z1)))))
        (local.set $bv (if (result v128) (local.get $bf)
          (then (i32x4.shl (i32x4.extend_low_i16x8_u
            (v128.load64_zero (i32.add (local.get $b) (i32.shr_u (local.get $j) (i32.const 1))))) (i32.const 16)))
          (else (v128.load (i32.add (local.get $b) (local.get $j))))))
        (v128.store64_lane 0 (local.get $oa)
          (f32x4.demote_f64x2_zero
            (f64x2.add (f64x2.promote_low_f32x4 (local.get $bv))
              (f64x2.mul (local.get $m0) (local.get $lam)))))
        (v128.store64_lane offset=8 0 (local.get $oa)
          (f32x4.demote_f64x2_zero
            (f64x2.add (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $bv) (local.get $bv)))
              (f64x2.mul (local.get $m1) (local.get $lam)))))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $next)))
    (call $tail (i32.add (local.get $o) (local.get $jfull)) (i32.and (local.get $n) (i32.const 3))))

  ;; Copies the first $k (< 4) outputs of a last partial group from 656448 to $o.
  (func $tail (param $o i32) (param $k i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $k)))
        (i32.store (i32.add (local.get $o) (i32.shl (local.get $i) (i32.const 2)))
          (i32.load offset=656448 (i32.shl (local.get $i) (i32.const 2))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))

  ;; Weighted sum of $m task vectors, four elements (two f64x2 halves) at a time:
  ;;   out = f32(b + ((((0 + d_0 * sc_0) + d_1 * sc_1) + ...) / z) * lambda)
  ;; with d_i = f32(x_i - b) from the inputs in the model regions if $raw (task_arithmetic), else the (masked)
  ;; deltas held there (then b - b is subtracted instead: d - 0 is d exactly, as is x / 1, so $z == 1 skips it).
  ;; Model i's array is at the i32 pointer at 656384 + 4i; the base at $b; exactly n outputs are written at $o.
  (func (export "sum_out") (param $m i32) (param $n i32) (param $b0 i32) (param $o i32) (param $z f64)
    (param $lambda f64) (param $raw i32) (param $bf i32)
    (local $bfx i32) (local $j i32) (local $jend i32) (local $p i32) (local $q i32) (local $pend i32) (local $div i32)
    (local $t i32) (local $jfull i32) (local $oa i32)
    (local $b v128) (local $bsub v128) (local $d v128) (local $s0 v128) (local $s1 v128) (local $sc v128)
    (local $lam v128) (local $zv v128) (local $rawv v128)
    (local.set $lam (f64x2.splat (local.get $lambda)))
    (local.set $zv (f64x2.splat (local.get $z)))
    (local.set $div (f64.ne (local.get $z) (f64.const 1)))
    (local.set $bfx (i32.and (local.get $bf) (i32.ne (local.get $raw) (i32.const 0))))
    (local.set $rawv (i32x4.splat (i32.sub (i32.const 0) (i32.ne (local.get $raw) (i32.const 0)))))
    (local.set $jend (i32.shl (local.get $n) (i32.const 2)))
    (local.set $jfull (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2)))
    (local.set $pend (i32.add (i32.const 656384) (i32.shl (local.get $m) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $j) (local.get $jend)))
        (local.set $oa (select (i32.add (local.get $o) (local.get $j)) (i32.const 656448)
          (i32.lt_u (local.get $j) (local.get $jfull))))
        (local.set $b (if (result v128) (local.get $bf)
          (then (i32x4.shl (i32x4.extend_low_i16x8_u
            (v128.load64_zero (i32.add (local.get $b0) (i32.shr_u (local.get $j) (i32.const 1))))) (i32.const 16)))
          (else (v128.load (i32.add (local.get $b0) (local.get $j))))))
        (local.set $bsub (v128.and (local.get $b) (local.get $rawv)))
        (local.set $s0 (f64x2.splat (f64.const 0)))
        (local.set $s1 (local.get $s0))
        (local.set $t (i32.const 656384))
        (local.set $q (i32.const 655360))
        (block $mdone
          (loop $model
            (br_if $mdone (i32.ge_u (local.get $t) (local.get $pend)))
            (local.set $p (i32.add (i32.load (local.get $t)) (i32.shr_u (local.get $j) (local.get $bfx))))
            (local.set $sc (v128.load (local.get $q)))
            (local.set $d (f32x4.sub (if (result v128) (local.get $bfx) (then (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $p))) (i32.const 16))) (else (v128.load (local.get $p)))) (local.get $bsub)))
            (local.set $s0 (f64x2.add (local.get $s0) (f64x2.mul (f64x2.promote_low_f32x4 (local.get $d)) (local.get $sc))))
            (local.set $s1 (f64x2.add (local.get $s1)
              (f64x2.mul (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $d) (local.get $d))) (local.get $sc))))
            (local.set $t (i32.add (local.get $t) (i32.const 4)))
            (local.set $q (i32.add (local.get $q) (i32.const 32)))
            (br $model)))
        (if (local.get $div)
          (then
            (local.set $s0 (f64x2.div (local.get $s0) (local.get $zv)))
            (local.set $s1 (f64x2.div (local.get $s1) (local.get $zv)))))
        (v128.store64_lane 0 (local.get $oa)
          (f32x4.demote_f64x2_zero
            (f64x2.add (f64x2.promote_low_f32x4 (local.get $b)) (f64x2.mul (local.get $s0) (local.get $lam)))))
        (v128.store64_lane offset=8 0 (local.get $oa)
          (f32x4.demote_f64x2_zero
            (f64x2.add (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $b) (local.get $b))) (f64x2.mul (local.get $s1) (local.get $lam)))))
        (local.set $j (i32.add (local.get $j) (i32.const 16)))
        (br $next)))
    (call $tail (i32.add (local.get $o) (local.get $jfull)) (i32.and (local.get $n) (i32.const 3))))

  ;; Appends the low 16 bits of |d| for the lanes of the four f32 at $x set in $mask (lane order) to the out
  ;; region after $k entries; returns the new count.
  (func $list4 (param $x i32) (param $mask i32) (param $k i32) (result i32)
    (local $lane i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $mask)))
        (local.set $lane (i32.ctz (local.get $mask)))
        (i32.store offset=65536 (i32.shl (local.get $k) (i32.const 2))
          (i32.and (i32.load (i32.add (local.get $x) (i32.shl (local.get $lane) (i32.const 2)))) (i32.const 0xffff)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (local.set $mask (i32.and (local.get $mask) (i32.sub (local.get $mask) (i32.const 1))))
        (br $next)))
    (local.get $k))

  ;; Lists, in element order, the low 16 bits of |d| for every f32 d at $x whose |d| bits >>> 16 == $bin (the
  ;; boundary bucket of a top-k selection) into the out region as u32; returns how many. With $sub, d is first
  ;; computed at $d as f32(x - b) (b at $b; without $sub, $d must equal $x). Four lanes at a time; the hits of a
  ;; group come from its bitmask.
  (func $list (param $x i32) (param $b i32) (param $d0 i32) (param $n i32) (param $bin i32) (param $sub i32)
    (param $bf i32)
    (result i32)
    (local $sh i32) (local $st i32) (local $end i32) (local $vend i32) (local $k i32) (local $a i32) (local $m i32)
    (local $binv v128) (local $abs v128) (local $d v128)
    (local.set $binv (i32x4.splat (local.get $bin)))
    (local.set $abs (i32x4.splat (i32.const 0x7fffffff)))
    (local.set $sh (i32.sub (i32.const 2) (local.get $bf)))
    (local.set $st (i32.shl (i32.const 4) (local.get $sh)))
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (local.get $sh))))
    (local.set $vend (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (local.get $sh))))
    (if (local.get $bf)
      ;; the same loop specialised for BF16 inputs and for f32 inputs (no per-load branch)
      (then
        (block $vdone
          (loop $vnext
            (br_if $vdone (i32.ge_u (local.get $x) (local.get $vend)))
            (if (local.get $sub)
              (then
                (local.set $d (f32x4.sub (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $x))) (i32.const 16)) (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $b))) (i32.const 16))))
                (v128.store (local.get $d0) (local.get $d)))
              (else (local.set $d (v128.load (local.get $x)))))
            (local.set $m (i32x4.bitmask
              (i32x4.eq (i32x4.shr_u (v128.and (local.get $d) (local.get $abs)) (i32.const 16)) (local.get $binv))))
            (if (local.get $m)
              (then (local.set $k (call $list4 (local.get $d0) (local.get $m) (local.get $k)))))
            (local.set $x (i32.add (local.get $x) (local.get $st)))
            (local.set $b (i32.add (local.get $b) (local.get $st)))
            (local.set $d0 (i32.add (local.get $d0) (i32.const 16)))
            (br $vnext))))
      (else
        (block $vdone
          (loop $vnext
            (br_if $vdone (i32.ge_u (local.get $x) (local.get $vend)))
            (if (local.get $sub)
              (then
                (local.set $d (f32x4.sub (v128.load (local.get $x)) (v128.load (local.get $b))))
                (v128.store (local.get $d0) (local.get $d)))
              (else (local.set $d (v128.load (local.get $x)))))
            (local.set $m (i32x4.bitmask
              (i32x4.eq (i32x4.shr_u (v128.and (local.get $d) (local.get $abs)) (i32.const 16)) (local.get $binv))))
            (if (local.get $m)
              (then (local.set $k (call $list4 (local.get $d0) (local.get $m) (local.get $k)))))
            (local.set $x (i32.add (local.get $x) (local.get $st)))
            (local.set $b (i32.add (local.get $b) (local.get $st)))
            (local.set $d0 (i32.add (local.get $d0) (i32.const 16)))
            (br $vnext)))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (if (local.get $sub)
          (then (f32.store (local.get $d0) (f32.sub (if (result f32) (local.get $bf) (then (f32.reinterpret_i32 (i32.shl (i32.load16_u (local.get $x)) (i32.const 16)))) (else (f32.load (local.get $x)))) (if (result f32) (local.get $bf) (then (f32.reinterpret_i32 (i32.shl (i32.load16_u (local.get $b)) (i32.const 16)))) (else (f32.load (local.get $b))))))))
        (local.set $a (i32.and (i32.load (local.get $d0)) (i32.const 0x7fffffff)))
        (if (i32.eq (i32.shr_u (local.get $a) (i32.const 16)) (local.get $bin))
          (then
            (i32.store offset=65536 (i32.shl (local.get $k) (i32.const 2)) (i32.and (local.get $a) (i32.const 0xffff)))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))))
        (local.set $x (i32.add (local.get $x) (i32.shr_u (local.get $st) (i32.const 2))))
        (local.set $b (i32.add (local.get $b) (i32.shr_u (local.get $st) (i32.const 2))))
        (local.set $d0 (i32.add (local.get $d0) (i32.const 4)))
        (br $next)))
    (local.get $k))

  (func (export "bin_list") (param $x i32) (param $n i32) (param $bin i32) (result i32)
    (call $list (local.get $x) (i32.const 0) (local.get $x) (local.get $n) (local.get $bin) (i32.const 0) (i32.const 0)))

  (func (export "delta_bin_list") (param $x i32) (param $b i32) (param $d i32) (param $n i32) (param $bin i32)
    (param $bf i32) (result i32)
    (call $list (local.get $x) (local.get $b) (local.get $d) (local.get $n) (local.get $bin) (i32.const 1) (local.get $bf)))

  ;; At $d: d = f32(x - b), kept iff the element's uniform u32 (rng.ts fillUniform's hash of $start + j under
  ;; the key $k0, $k1) is <= $thr, i.e. u / 2^32 < density. Returns how many were kept.
  (func (export "delta_random") (param $x i32) (param $b i32) (param $d i32) (param $n i32) (param $start i32)
    (param $k0 i32) (param $k1 i32) (param $thr i32) (param $bf i32) (result i32)
    (local $sh i32) (local $st i32) (local $end i32) (local $u v128) (local $keep v128) (local $acc v128) (local $idx v128) (local $k0v v128)
    (local $k1v v128) (local $c1 v128) (local $c2 v128) (local $thrv v128) (local $four v128) (local $lanes i32)
    (local $kept i32)
    (local.set $idx (i32x4.add (i32x4.splat (local.get $start)) (v128.const i32x4 0 1 2 3)))
    (local.set $four (i32x4.splat (i32.const 4)))
    (local.set $k0v (i32x4.splat (local.get $k0)))
    (local.set $k1v (i32x4.splat (local.get $k1)))
    (local.set $c1 (i32x4.splat (i32.const 0x7feb352d)))
    (local.set $c2 (i32x4.splat (i32.const 0x846ca68b)))
    (local.set $thrv (i32x4.splat (local.get $thr)))
    (local.set $sh (i32.sub (i32.const 2) (local.get $bf)))
    (local.set $st (i32.shl (i32.const 4) (local.get $sh)))
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (local.get $sh))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (local.set $u (v128.xor (local.get $idx) (local.get $k0v)))
        (local.set $u (v128.xor (local.get $u) (i32x4.shr_u (local.get $u) (i32.const 16))))
        (local.set $u (i32x4.mul (local.get $u) (local.get $c1)))
        (local.set $u (v128.xor (local.get $u) (i32x4.shr_u (local.get $u) (i32.const 15))))
        (local.set $u (i32x4.mul (local.get $u) (local.get $c2)))
        (local.set $u (v128.xor (local.get $u) (i32x4.shr_u (local.get $u) (i32.const 16))))
        (local.set $u (v128.xor (local.get $u) (local.get $k1v)))
        (local.set $u (v128.xor (local.get $u) (i32x4.shr_u (local.get $u) (i32.const 16))))
        (local.set $u (i32x4.mul (local.get $u) (local.get $c1)))
        (local.set $u (v128.xor (local.get $u) (i32x4.shr_u (local.get $u) (i32.const 15))))
        (local.set $u (i32x4.mul (local.get $u) (local.get $c2)))
        (local.set $u (v128.xor (local.get $u) (i32x4.shr_u (local.get $u) (i32.const 16))))
        (local.set $keep (i32x4.le_u (local.get $u) (local.get $thrv)))
        ;; a last partial group: lanes at and past n are not counted (their stores land past n, unread)
        (local.set $lanes (i32.shr_u (i32.sub (local.get $end) (local.get $x)) (local.get $sh)))
        (if (i32.lt_u (local.get $lanes) (i32.const 4))
          (then
            (local.set $keep (v128.and (local.get $keep)
              (i32x4.gt_u (i32x4.splat (local.get $lanes)) (v128.const i32x4 0 1 2 3))))))
        (v128.store (local.get $d)
          (v128.and (f32x4.sub (if (result v128) (local.get $bf) (then (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $x))) (i32.const 16))) (else (v128.load (local.get $x)))) (if (result v128) (local.get $bf) (then (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $b))) (i32.const 16))) (else (v128.load (local.get $b))))) (local.get $keep)))
        (local.set $acc (i32x4.sub (local.get $acc) (local.get $keep)))
        (local.set $idx (i32x4.add (local.get $idx) (local.get $four)))
        (local.set $d (i32.add (local.get $d) (i32.const 16)))
        (local.set $x (i32.add (local.get $x) (local.get $st)))
        (local.set $b (i32.add (local.get $b) (local.get $st)))
        (br $next)))
    (i32.add
      (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
      (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc)))))

  ;; DARE's L1 norms for the rescale, over the input x at $x (not modified) and the base at $b: with d = f32(x - b)
  ;; and the keep test of delta_random, element g = $start + j adds |d| to lane g & 15 of the norm before masking
  ;; (f64 at 655872 + 8 lane) and |d| or +0 (dropped) to the same lane of the norm after (at 656000 + 8 lane): each
  ;; lane in element order, exactly as the JS loops (gta-kernels.ts l1Lanes). Sixteen chains instead of one.
  (func (export "l1_random") (param $x i32) (param $b i32) (param $n i32) (param $start i32) (param $k0 i32)
    (param $k1 i32) (param $thr i32)
    (local $end i32) (local $u i32) (local $a f64) (local $p i32)
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (local.set $a (f64.promote_f32 (f32.abs (f32.sub (f32.load (local.get $x)) (f32.load (local.get $b))))))
        (local.set $p (i32.add (i32.const 655872) (i32.shl (i32.and (local.get $start) (i32.const 15)) (i32.const 3))))
        (f64.store (local.get $p) (f64.add (f64.load (local.get $p)) (local.get $a)))
        (local.set $u (i32.xor (local.get $start) (local.get $k0)))
        (local.set $u (i32.xor (local.get $u) (i32.shr_u (local.get $u) (i32.const 16))))
        (local.set $u (i32.mul (local.get $u) (i32.const 0x7feb352d)))
        (local.set $u (i32.xor (local.get $u) (i32.shr_u (local.get $u) (i32.const 15))))
        (local.set $u (i32.mul (local.get $u) (i32.const 0x846ca68b)))
        (local.set $u (i32.xor (local.get $u) (i32.shr_u (local.get $u) (i32.const 16))))
        (local.set $u (i32.xor (local.get $u) (local.get $k1)))
        (local.set $u (i32.xor (local.get $u) (i32.shr_u (local.get $u) (i32.const 16))))
        (local.set $u (i32.mul (local.get $u) (i32.const 0x7feb352d)))
        (local.set $u (i32.xor (local.get $u) (i32.shr_u (local.get $u) (i32.const 15))))
        (local.set $u (i32.mul (local.get $u) (i32.const 0x846ca68b)))
        (local.set $u (i32.xor (local.get $u) (i32.shr_u (local.get $u) (i32.const 16))))
        ;; branch-free: |d| or +0 by masking its bits with 0 - keep (all ones or zero)
        (local.set $p (i32.add (local.get $p) (i32.const 128)))
        (f64.store (local.get $p) (f64.add (f64.load (local.get $p))
          (f64.reinterpret_i64 (i64.and (i64.reinterpret_f64 (local.get $a))
            (i64.extend_i32_s (i32.sub (i32.const 0) (i32.le_u (local.get $u) (local.get $thr))))))))
        (local.set $start (i32.add (local.get $start) (i32.const 1)))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $b (i32.add (local.get $b) (i32.const 4)))
        (br $next))))

;; The high-bits histogram of a top-k magnitude selection (tensor/select.ts): for each of the n f32 d at $d,
  ;; counts[|d| bits >>> 16] += 1 in the u32 histogram at $h (32768 bins; the caller folds bins 0..0x7f80 into its
  ;; counts and skips the NaN bins, which hold only NaNs for values made by IEEE arithmetic). Exactly n read.
  ;; With $sub, d = f32(x - b) of the inputs at $d and $b instead (not stored). Four elements per step from one
  ;; v128, the counts incremented one by one.
  (func $hist (param $d i32) (param $b i32) (param $n i32) (param $h i32) (param $sub i32)
    (param $bf i32)
    (local $sh i32) (local $st i32) (local $vend i32) (local $end i32) (local $v v128) (local $p i32) (local $u i32)
    (local.set $sh (i32.sub (i32.const 2) (local.get $bf)))
    (local.set $st (i32.shl (i32.const 4) (local.get $sh)))
    (local.set $end (i32.add (local.get $d) (i32.shl (local.get $n) (local.get $sh))))
    (local.set $vend (i32.add (local.get $d) (i32.shl (i32.and (local.get $n) (i32.const -4)) (local.get $sh))))
    (if (local.get $bf)
      ;; the same loop specialised for BF16 inputs and for f32 inputs (no per-load branch)
      (then
        (block $vdone
          (loop $vnext
            (br_if $vdone (i32.ge_u (local.get $d) (local.get $vend)))
            (if (local.get $sub)
              (then (local.set $v (f32x4.sub (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $d))) (i32.const 16)) (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $b))) (i32.const 16)))))
              (else (local.set $v (v128.load (local.get $d)))))
            ;; byte offset of the bin: ((u & 0x7fffffff) >>> 16) * 4 == (u >>> 14) & 0x1fffc
            (local.set $v (v128.and (i32x4.shr_u (local.get $v) (i32.const 14)) (i32x4.splat (i32.const 0x1fffc))))
            (local.set $p (i32.add (local.get $h) (i32x4.extract_lane 0 (local.get $v))))
            (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
            (local.set $p (i32.add (local.get $h) (i32x4.extract_lane 1 (local.get $v))))
            (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
            (local.set $p (i32.add (local.get $h) (i32x4.extract_lane 2 (local.get $v))))
            (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
            (local.set $p (i32.add (local.get $h) (i32x4.extract_lane 3 (local.get $v))))
            (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
            (local.set $d (i32.add (local.get $d) (local.get $st)))
            (local.set $b (i32.add (local.get $b) (local.get $st)))
            (br $vnext))))
      (else
        (block $vdone
          (loop $vnext
            (br_if $vdone (i32.ge_u (local.get $d) (local.get $vend)))
            (if (local.get $sub)
              (then (local.set $v (f32x4.sub (v128.load (local.get $d)) (v128.load (local.get $b)))))
              (else (local.set $v (v128.load (local.get $d)))))
            ;; byte offset of the bin: ((u & 0x7fffffff) >>> 16) * 4 == (u >>> 14) & 0x1fffc
            (local.set $v (v128.and (i32x4.shr_u (local.get $v) (i32.const 14)) (i32x4.splat (i32.const 0x1fffc))))
            (local.set $p (i32.add (local.get $h) (i32x4.extract_lane 0 (local.get $v))))
            (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
            (local.set $p (i32.add (local.get $h) (i32x4.extract_lane 1 (local.get $v))))
            (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
            (local.set $p (i32.add (local.get $h) (i32x4.extract_lane 2 (local.get $v))))
            (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
            (local.set $p (i32.add (local.get $h) (i32x4.extract_lane 3 (local.get $v))))
            (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
            (local.set $d (i32.add (local.get $d) (local.get $st)))
            (local.set $b (i32.add (local.get $b) (local.get $st)))
            (br $vnext)))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $d) (local.get $end)))
        (if (local.get $sub)
          (then (local.set $u (i32.reinterpret_f32 (f32.sub (if (result f32) (local.get $bf) (then (f32.reinterpret_i32 (i32.shl (i32.load16_u (local.get $d)) (i32.const 16)))) (else (f32.load (local.get $d)))) (if (result f32) (local.get $bf) (then (f32.reinterpret_i32 (i32.shl (i32.load16_u (local.get $b)) (i32.const 16)))) (else (f32.load (local.get $b))))))))
          (else (local.set $u (i32.load (local.get $d)))))
        (local.set $p (i32.add (local.get $h) (i32.and (i32.shr_u (local.get $u) (i32.const 14)) (i32.const 0x1fffc))))
        (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
        (local.set $d (i32.add (local.get $d) (i32.shr_u (local.get $st) (i32.const 2))))
        (local.set $b (i32.add (local.get $b) (i32.shr_u (local.get $st) (i32.const 2))))
        (br $next))))

  (func (export "hist_high") (param $d i32) (param $n i32) (param $h i32)
    (call $hist (local.get $d) (local.get $d) (local.get $n) (local.get $h) (i32.const 0) (i32.const 0)))

  (func (export "delta_hist_high") (param $x i32) (param $b i32) (param $n i32) (param $h i32) (param $bf i32)
    (call $hist (local.get $x) (local.get $b) (local.get $n) (local.get $h) (i32.const 1) (local.get $bf)))

;; delta_hist_high for BF16 inputs (d = f32(x - b), not stored) that counts an inexact d (low 16 bits of its f32
  ;; bits not all zero: its high-bits bin does not fix its value) in the slot's inexact counts (1M past $h) instead
  ;; of the slot itself (the caller adds both to the totals). A boundary bin without enough inexact elements then
  ;; needs no low pass (select.ts addInexactCounts). Exactly n read.
  (func (export "delta_hist_inexact") (param $x i32) (param $b i32) (param $n i32) (param $h i32)
    (local $vend i32) (local $end i32) (local $u i32) (local $p i32)
    (local $v v128) (local $o v128) (local $low v128) (local $zero v128) (local $far v128)
    (local.set $low (i32x4.splat (i32.const 0xffff)))
    (local.set $far (i32x4.splat (i32.const 0x100000)))
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 1))))
    (local.set $vend (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 1))))
    (block $vdone
      (loop $vnext
        (br_if $vdone (i32.ge_u (local.get $x) (local.get $vend)))
        (local.set $v (f32x4.sub (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $x))) (i32.const 16)) (i32x4.shl (i32x4.extend_low_i16x8_u (v128.load64_zero (local.get $b))) (i32.const 16))))
        ;; byte offset of the bin: ((u & 0x7fffffff) >>> 16) * 4 == (u >>> 14) & 0x1fffc, plus 1M if inexact
        (local.set $o (i32x4.add (v128.and (i32x4.shr_u (local.get $v) (i32.const 14)) (i32x4.splat (i32.const 0x1fffc)))
          (v128.and (i32x4.ne (v128.and (local.get $v) (local.get $low)) (local.get $zero)) (local.get $far))))
        (local.set $p (i32.add (local.get $h) (i32x4.extract_lane 0 (local.get $o))))
        (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
        (local.set $p (i32.add (local.get $h) (i32x4.extract_lane 1 (local.get $o))))
        (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
        (local.set $p (i32.add (local.get $h) (i32x4.extract_lane 2 (local.get $o))))
        (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
        (local.set $p (i32.add (local.get $h) (i32x4.extract_lane 3 (local.get $o))))
        (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
        (local.set $x (i32.add (local.get $x) (i32.const 8)))
        (local.set $b (i32.add (local.get $b) (i32.const 8)))
        (br $vnext)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
        (local.set $u (i32.reinterpret_f32 (f32.sub (f32.reinterpret_i32 (i32.shl (i32.load16_u (local.get $x)) (i32.const 16))) (f32.reinterpret_i32 (i32.shl (i32.load16_u (local.get $b)) (i32.const 16))))))
        (local.set $p (i32.add (i32.add (local.get $h) (i32.and (i32.shr_u (local.get $u) (i32.const 14)) (i32.const 0x1fffc)))
          (select (i32.const 0x100000) (i32.const 0) (i32.and (local.get $u) (i32.const 0xffff)))))
        (i32.store (local.get $p) (i32.add (i32.load (local.get $p)) (i32.const 1)))
        (local.set $x (i32.add (local.get $x) (i32.const 2)))
        (local.set $b (i32.add (local.get $b) (i32.const 2)))
        (br $next))))

  ;; bf16 -> f32 (exact: the bits shifted into the high half) from $src to $dst, exactly n outputs: eight lanes
  ;; at a time, then one by one. Workspaces stage their source at 786432 (rank_into's scratch, unused there).
  (func (export "widen_bf16") (param $src i32) (param $dst i32) (param $n i32)
    (local $vend i32) (local $end i32) (local $v v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (local.set $vend (i32.add (local.get $src) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 1))))
    (block $vdone
      (loop $vnext
        (br_if $vdone (i32.ge_u (local.get $src) (local.get $vend)))
        (local.set $v (v128.load (local.get $src)))
        (v128.store (local.get $dst) (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)))
        (v128.store offset=16 (local.get $dst) (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $vnext)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (i32.store (local.get $dst) (i32.shl (i32.load16_u (local.get $src)) (i32.const 16)))
        (local.set $src (i32.add (local.get $src) (i32.const 2)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (br $next))))

  ;; f32 -> bf16 bits, round to nearest even, NaN quieted (as kernels.wat f32_to_bf16 and convert.ts), from $src to
  ;; $dst, exactly n outputs: eight at a time, then one by one. $dst may equal $src (in place: a group's writes land
  ;; below its reads, which come first).
  (func (export "narrow_bf16") (param $src i32) (param $dst i32) (param $n i32)
    (local $vend i32) (local $end i32) (local $s i32) (local $u v128) (local $a v128) (local $b v128)
    (local $cquiet v128) (local $c7fff v128) (local $c1 v128)
    (local.set $cquiet (i32x4.splat (i32.const 0x00400000)))
    (local.set $c7fff (i32x4.splat (i32.const 0x7fff)))
    (local.set $c1 (i32x4.splat (i32.const 1)))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $vend (i32.add (local.get $src) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
    (block $vdone
      (loop $vnext
        (br_if $vdone (i32.ge_u (local.get $src) (local.get $vend)))
        (local.set $u (v128.load (local.get $src)))
        (local.set $a
          (v128.bitselect
            (v128.or (local.get $u) (local.get $cquiet))
            (i32x4.add
              (i32x4.add (local.get $u) (local.get $c7fff))
              (v128.and (i32x4.shr_u (local.get $u) (i32.const 16)) (local.get $c1)))
            (f32x4.ne (local.get $u) (local.get $u))))
        (local.set $u (v128.load offset=16 (local.get $src)))
        (local.set $b
          (v128.bitselect
            (v128.or (local.get $u) (local.get $cquiet))
            (i32x4.add
              (i32x4.add (local.get $u) (local.get $c7fff))
              (v128.and (i32x4.shr_u (local.get $u) (i32.const 16)) (local.get $c1)))
            (f32x4.ne (local.get $u) (local.get $u))))
        (v128.store (local.get $dst)
          (i8x16.shuffle 2 3 6 7 10 11 14 15 18 19 22 23 26 27 30 31 (local.get $a) (local.get $b)))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br $vnext)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $s (i32.load (local.get $src)))
        (i32.store16 (local.get $dst)
          (select
            (i32.shr_u (i32.or (local.get $s) (i32.const 0x00400000)) (i32.const 16))
            (i32.shr_u (i32.add (i32.add (local.get $s) (i32.const 0x7fff)) (i32.and (i32.shr_u (local.get $s) (i32.const 16)) (i32.const 1))) (i32.const 16))
            (f32.ne (f32.reinterpret_i32 (local.get $s)) (f32.reinterpret_i32 (local.get $s)))))
        (local.set $src (i32.add (local.get $src) (i32.const 4)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 2)))
        (br $next))))

  ;; rank_into (same algorithm and result as tensor/quantile.ts MagnitudeRanker.rankInto): ranks[j] = 0-based
  ;; ascending rank of |x[j]| among the n <= CAP inputs, equal magnitudes ranked by element order (the later one
  ;; lower). LSD radix sort on the magnitude bits, four 8-bit digits, all histograms built in one pass; a digit
  ;; every key shares is skipped. Input f32 at 1114112, output i32 at 1179648.
  (func (export "rank_into") (param $n i32)
    (local $keys i32) (local $keys2 i32) (local $perm i32) (local $tmp i32) (local $t i32)
    (local $r i32) (local $j i32) (local $k i32) (local $pass i32) (local $o i32) (local $shift i32)
    (local $sum i32) (local $c i32) (local $d i32) (local $pos i32)
    (local.set $keys (i32.const 786432))
    (local.set $keys2 (i32.const 851968))
    (local.set $perm (i32.const 917504))
    (local.set $tmp (i32.const 983040))
    ;; clear the histograms at 1048576 (1024 i32)
    (local.set $r (i32.const 0))
    (block $cdone
      (loop $clear
        (br_if $cdone (i32.ge_u (local.get $r) (i32.const 4096)))
        (v128.store offset=1048576 (local.get $r) (v128.const i32x4 0 0 0 0))
        (local.set $r (i32.add (local.get $r) (i32.const 16)))
        (br $clear)))
    ;; reversed start order: a stable ascending sort then places the later of two equal keys first
    (local.set $r (i32.const 0))
    (block $ldone
      (loop $load
        (br_if $ldone (i32.ge_u (local.get $r) (local.get $n)))
        (local.set $j (i32.sub (i32.sub (local.get $n) (i32.const 1)) (local.get $r)))
        (local.set $k (i32.and (i32.load offset=1114112 (i32.shl (local.get $j) (i32.const 2))) (i32.const 0x7fffffff)))
        (i32.store (i32.add (local.get $keys) (i32.shl (local.get $r) (i32.const 2))) (local.get $k))
        (i32.store (i32.add (local.get $perm) (i32.shl (local.get $r) (i32.const 2))) (local.get $j))
        (local.set $d (i32.shl (i32.and (local.get $k) (i32.const 0xff)) (i32.const 2)))
        (i32.store offset=1048576 (local.get $d) (i32.add (i32.load offset=1048576 (local.get $d)) (i32.const 1)))
        (local.set $d (i32.shl (i32.and (i32.shr_u (local.get $k) (i32.const 8)) (i32.const 0xff)) (i32.const 2)))
        (i32.store offset=1049600 (local.get $d) (i32.add (i32.load offset=1049600 (local.get $d)) (i32.const 1)))
        (local.set $d (i32.shl (i32.and (i32.shr_u (local.get $k) (i32.const 16)) (i32.const 0xff)) (i32.const 2)))
        (i32.store offset=1050624 (local.get $d) (i32.add (i32.load offset=1050624 (local.get $d)) (i32.const 1)))
        (local.set $d (i32.shl (i32.shr_u (local.get $k) (i32.const 24)) (i32.const 2)))
        (i32.store offset=1051648 (local.get $d) (i32.add (i32.load offset=1051648 (local.get $d)) (i32.const 1)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $load)))
    (local.set $pass (i32.const 0))
    (block $pdone
      (loop $passes
        (br_if $pdone (i32.ge_u (local.get $pass) (i32.const 4)))
        (local.set $o (i32.add (i32.const 1048576) (i32.shl (local.get $pass) (i32.const 10))))
        (local.set $shift (i32.shl (local.get $pass) (i32.const 3)))
        (local.set $pass (i32.add (local.get $pass) (i32.const 1)))
        ;; every key has this digit: the pass is a no-op
        (br_if $passes (i32.eq (local.get $n)
          (i32.load (i32.add (local.get $o) (i32.shl (i32.and (i32.shr_u (i32.load (local.get $keys)) (local.get $shift))
                                                              (i32.const 0xff)) (i32.const 2))))))
        (local.set $sum (i32.const 0))
        (local.set $d (i32.const 0))
        (block $sdone
          (loop $prefix
            (br_if $sdone (i32.ge_u (local.get $d) (i32.const 1024)))
            (local.set $c (i32.load (i32.add (local.get $o) (local.get $d))))
            (i32.store (i32.add (local.get $o) (local.get $d)) (local.get $sum))
            (local.set $sum (i32.add (local.get $sum) (local.get $c)))
            (local.set $d (i32.add (local.get $d) (i32.const 4)))
            (br $prefix)))
        (local.set $r (i32.const 0))
        (block $edone
          (loop $scatter
            (br_if $edone (i32.ge_u (local.get $r) (local.get $n)))
            (local.set $k (i32.load (i32.add (local.get $keys) (i32.shl (local.get $r) (i32.const 2)))))
            (local.set $d (i32.add (local.get $o)
              (i32.shl (i32.and (i32.shr_u (local.get $k) (local.get $shift)) (i32.const 0xff)) (i32.const 2))))
            (local.set $pos (i32.load (local.get $d)))
            (i32.store (local.get $d) (i32.add (local.get $pos) (i32.const 1)))
            (local.set $pos (i32.shl (local.get $pos) (i32.const 2)))
            (i32.store (i32.add (local.get $keys2) (local.get $pos)) (local.get $k))
            (i32.store (i32.add (local.get $tmp) (local.get $pos))
              (i32.load (i32.add (local.get $perm) (i32.shl (local.get $r) (i32.const 2)))))
            (local.set $r (i32.add (local.get $r) (i32.const 1)))
            (br $scatter)))
        (local.set $t (local.get $keys))
        (local.set $keys (local.get $keys2))
        (local.set $keys2 (local.get $t))
        (local.set $t (local.get $perm))
        (local.set $perm (local.get $tmp))
        (local.set $tmp (local.get $t))
        (br $passes)))
    (local.set $r (i32.const 0))
    (block $odone
      (loop $out
        (br_if $odone (i32.ge_u (local.get $r) (local.get $n)))
        (i32.store offset=1179648
          (i32.shl (i32.load (i32.add (local.get $perm) (i32.shl (local.get $r) (i32.const 2)))) (i32.const 2))
          (local.get $r))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $out))))
)
