;; SIMD conversion kernels between f32 and bf16/f16 bit patterns. Built by scripts/build-wasm.ts into
;; kernels.generated.ts. Each kernel reads n elements at $src and writes n at $dst, 8 elements per step, so it may
;; touch up to 7 elements past n on both sides: callers keep that slack inside the fixed memory regions.
;; Results are bit-identical to the JS loops in ../convert.ts (round to nearest even, quiet NaN, payload kept).
(module
  ;; 8 pages = 512 KiB: input region [0, 256 KiB), output region [256 KiB, 512 KiB). Never grown.
  (memory (export "memory") 8 8)

  ;; bf16 -> f32: zero-extend each u16 lane to u32 and shift it into the high half.
  (func (export "bf16_to_f32") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $v v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $v (v128.load (local.get $src)))
        (v128.store (local.get $dst)
          (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)))
        (v128.store offset=16 (local.get $dst)
          (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $next))))

  ;; f32 -> bf16, round to nearest even: u + 0x7fff + ((u >> 16) & 1), high half kept. NaN lanes keep their
  ;; high half with the quiet bit set (u | 0x00400000) instead. The two high halves of 8 lanes are packed by a shuffle.
  (func (export "f32_to_bf16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $u v128) (local $a v128) (local $b v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $u (v128.load (local.get $src)))
        (local.set $a
          (v128.bitselect
            (v128.or (local.get $u) (v128.const i32x4 0x00400000 0x00400000 0x00400000 0x00400000))
            (i32x4.add
              (i32x4.add (local.get $u) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff))
              (v128.and (i32x4.shr_u (local.get $u) (i32.const 16)) (v128.const i32x4 1 1 1 1)))
            (f32x4.ne (local.get $u) (local.get $u))))
        (local.set $u (v128.load offset=16 (local.get $src)))
        (local.set $b
          (v128.bitselect
            (v128.or (local.get $u) (v128.const i32x4 0x00400000 0x00400000 0x00400000 0x00400000))
            (i32x4.add
              (i32x4.add (local.get $u) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff))
              (v128.and (i32x4.shr_u (local.get $u) (i32.const 16)) (v128.const i32x4 1 1 1 1)))
            (f32x4.ne (local.get $u) (local.get $u))))
        (v128.store (local.get $dst)
          (i8x16.shuffle 2 3 6 7 10 11 14 15 18 19 22 23 26 27 30 31 (local.get $a) (local.get $b)))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br $next))))

  ;; f16 -> f32 for one i32x4 of zero-extended f16 bits. Finite values: (h & 0x7fff) << 13 read as an f32 is the
  ;; value times 2^-112 (subnormals included), so one exact multiply by 2^112 rebiases it. Inf/NaN (|h| >= 0x7c00):
  ;; exponent all ones, mantissa << 13, quiet bit set for NaN. Sign ORed back last.
  (func $f16x4 (param $h v128) (result v128)
    (local $em v128) (local $t v128)
    (local.set $em (v128.and (local.get $h) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)))
    (local.set $t (i32x4.shl (local.get $em) (i32.const 13)))
    (v128.or
      (i32x4.shl (v128.and (local.get $h) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16))
      (v128.bitselect
        (v128.or
          (v128.or (local.get $t) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
          (v128.and
            (i32x4.gt_s (local.get $em) (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00))
            (v128.const i32x4 0x00400000 0x00400000 0x00400000 0x00400000)))
        (f32x4.mul (local.get $t) (v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112))
        (i32x4.ge_s (local.get $em) (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00)))))

  (func (export "f16_to_f32") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $v v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $v (v128.load (local.get $src)))
        (v128.store (local.get $dst) (call $f16x4 (i32x4.extend_low_i16x8_u (local.get $v))))
        (v128.store offset=16 (local.get $dst) (call $f16x4 (i32x4.extend_high_i16x8_u (local.get $v))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $next))))

  ;; f32 -> f16 for one i32x4 of f32 bits, round to nearest even, result in the low 16 bits of each lane.
  ;; |x| < 2^-14 (f16 subnormal or zero): |x| + 0.5 in f32 arithmetic rounds to a multiple of 2^-24, the f16
  ;; subnormal step, so its low bits are the f16 code. Normal: rebias the exponent, add 0xfff + lsb, shift by 13
  ;; (a carry reaches Inf at >= 65520). |x| >= 65520: Inf, or NaN with quiet bit and top payload bits kept.
  (func $f32x4_to_f16 (param $u v128) (result v128)
    (local $a v128)
    (local.set $a (v128.and (local.get $u) (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff)))
    (v128.or
      (v128.and (i32x4.shr_u (local.get $u) (i32.const 16)) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000))
      (v128.bitselect
        (v128.bitselect
          (v128.or
            (v128.const i32x4 0x7e00 0x7e00 0x7e00 0x7e00)
            (v128.and (i32x4.shr_u (local.get $a) (i32.const 13)) (v128.const i32x4 0x3ff 0x3ff 0x3ff 0x3ff)))
          (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00)
          (i32x4.gt_s (local.get $a) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000)))
        (v128.bitselect
          (i32x4.sub
            (f32x4.add (local.get $a) (v128.const f32x4 0.5 0.5 0.5 0.5))
            (v128.const i32x4 0x3f000000 0x3f000000 0x3f000000 0x3f000000))
          (i32x4.shr_u
            (i32x4.add
              (i32x4.add (local.get $a) (v128.const i32x4 0xc8000fff 0xc8000fff 0xc8000fff 0xc8000fff))
              (v128.and (i32x4.shr_u (local.get $a) (i32.const 13)) (v128.const i32x4 1 1 1 1)))
            (i32.const 13))
          (i32x4.lt_s (local.get $a) (v128.const i32x4 0x38800000 0x38800000 0x38800000 0x38800000)))
        (i32x4.ge_s (local.get $a) (v128.const i32x4 0x477ff000 0x477ff000 0x477ff000 0x477ff000)))))

  (func (export "f32_to_f16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (v128.store (local.get $dst)
          (i8x16.shuffle 0 1 4 5 8 9 12 13 16 17 20 21 24 25 28 29
            (call $f32x4_to_f16 (v128.load (local.get $src)))
            (call $f32x4_to_f16 (v128.load offset=16 (local.get $src)))))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br $next))))
)
