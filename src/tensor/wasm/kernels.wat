;; SIMD conversion kernels between f32 and bf16/f16 bit patterns. Built by scripts/build-wasm.ts into
;; kernels.generated.ts. Each kernel converts n elements from $src to $dst, 8 per step, so it may touch up to 7
;; elements past n on both sides: callers keep n <= 65536 and the fixed regions below.
;; Results are bit-identical to the JS loops in ../convert.ts (round to nearest even, quiet NaN, payload kept).
(module
  ;; 9 pages, never grown: input region [0, 256 KiB), output region [256 KiB, 512 KiB), constants at 512 KiB.
  (memory (export "memory") 9 9)

  ;; Vector constants, loaded into locals before each loop: V8 rebuilds a v128.const inside a loop on every
  ;; iteration (3 instructions each), which made these kernels instruction-bound; a loaded value stays in a register.
  (data (i32.const 524288) "\ff\7f\ff\7f\ff\7f\ff\7f\ff\7f\ff\7f\ff\7f\ff\7f") ;; i16x8 0x7fff
  (data (i32.const 524304) "\00\80\00\80\00\80\00\80\00\80\00\80\00\80\00\80") ;; i16x8 0x8000
  (data (i32.const 524320) "\ff\7b\ff\7b\ff\7b\ff\7b\ff\7b\ff\7b\ff\7b\ff\7b") ;; i16x8 0x7bff
  (data (i32.const 524336) "\00\38\00\38\00\38\00\38\00\38\00\38\00\38\00\38") ;; i16x8 0x3800
  (data (i32.const 524352) "\00\7c\00\7c\00\7c\00\7c\00\7c\00\7c\00\7c\00\7c") ;; i16x8 0x7c00
  (data (i32.const 524368) "\00\02\00\02\00\02\00\02\00\02\00\02\00\02\00\02") ;; i16x8 0x0200
  (data (i32.const 524384) "\00\00\80\77\00\00\80\77\00\00\80\77\00\00\80\77") ;; f32x4 0x1p112
  (data (i32.const 524400) "\ff\ff\ff\7f\ff\ff\ff\7f\ff\ff\ff\7f\ff\ff\ff\7f") ;; i32x4 0x7fffffff
  (data (i32.const 524416) "\00\80\00\00\00\80\00\00\00\80\00\00\00\80\00\00") ;; i32x4 0x8000
  (data (i32.const 524432) "\00\00\80\7f\00\00\80\7f\00\00\80\7f\00\00\80\7f") ;; i32x4 0x7f800000
  (data (i32.const 524448) "\ff\03\00\00\ff\03\00\00\ff\03\00\00\ff\03\00\00") ;; i32x4 0x3ff
  (data (i32.const 524464) "\00\02\00\00\00\02\00\00\00\02\00\00\00\02\00\00") ;; i32x4 0x200
  (data (i32.const 524480) "\00\00\00\3f\00\00\00\3f\00\00\00\3f\00\00\00\3f") ;; f32x4 0.5 = i32x4 0x3f000000
  (data (i32.const 524496) "\ff\0f\00\c8\ff\0f\00\c8\ff\0f\00\c8\ff\0f\00\c8") ;; i32x4 0xc8000fff = 0xfff - (112 << 23)
  (data (i32.const 524512) "\01\00\00\00\01\00\00\00\01\00\00\00\01\00\00\00") ;; i32x4 1
  (data (i32.const 524528) "\00\7c\00\00\00\7c\00\00\00\7c\00\00\00\7c\00\00") ;; i32x4 0x7c00
  (data (i32.const 524544) "\00\00\80\38\00\00\80\38\00\00\80\38\00\00\80\38") ;; i32x4 0x38800000 = 2^-14
  (data (i32.const 524560) "\00\00\40\00\00\00\40\00\00\00\40\00\00\00\40\00") ;; i32x4 0x00400000
  (data (i32.const 524576) "\ff\7f\00\00\ff\7f\00\00\ff\7f\00\00\ff\7f\00\00") ;; i32x4 0x7fff

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
  ;; high half with the quiet bit set (u | 0x00400000) instead. The high halves of 8 lanes are packed by a shuffle.
  (func (export "f32_to_bf16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $u v128) (local $a v128) (local $b v128) (local $cquiet v128) (local $c7fff v128)
    (local $c1 v128)
    (local.set $cquiet (v128.load (i32.const 524560)))
    (local.set $c7fff (v128.load (i32.const 524576)))
    (local.set $c1 (v128.load (i32.const 524512)))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
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
        (br $next))))

  ;; f16 -> f32, 8 lanes per step, masks computed once on the i16 lanes. Finite values: em = h & 0x7fff; em << 13
  ;; read as an f32 is the value times 2^-112 (subnormals included), so one exact multiply by 2^112 rebiases it.
  ;; For em >= 0x7c00 that product is 0x47800000 | m << 13, and adding 0x38000000 makes it Inf/NaN with the
  ;; mantissa kept; NaNs get mantissa bit 9 set first (the f32 quiet bit after the shift). The sign and the
  ;; 0x3800 exponent fix-up are one i16 lane added to the high half of each product.
  (func (export "f16_to_f32") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $v v128) (local $em v128) (local $hi v128) (local $c7fff16 v128) (local $c800016 v128)
    (local $c7bff16 v128) (local $c380016 v128) (local $c7c0016 v128) (local $c020016 v128) (local $cx2p112 v128)
    (local.set $c7fff16 (v128.load (i32.const 524288)))
    (local.set $c800016 (v128.load (i32.const 524304)))
    (local.set $c7bff16 (v128.load (i32.const 524320)))
    (local.set $c380016 (v128.load (i32.const 524336)))
    (local.set $c7c0016 (v128.load (i32.const 524352)))
    (local.set $c020016 (v128.load (i32.const 524368)))
    (local.set $cx2p112 (v128.load (i32.const 524384)))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $v (v128.load (local.get $src)))
        (local.set $em (v128.and (local.get $v) (local.get $c7fff16)))
        (local.set $hi
          (v128.or
            (v128.and (local.get $v) (local.get $c800016))
            (v128.and (i16x8.gt_s (local.get $em) (local.get $c7bff16)) (local.get $c380016))))
        (local.set $em
          (v128.or
            (local.get $em)
            (v128.and (i16x8.gt_s (local.get $em) (local.get $c7c0016)) (local.get $c020016))))
        (v128.store (local.get $dst)
          (i32x4.add
            (f32x4.mul (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $em)) (i32.const 13)) (local.get $cx2p112))
            (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $hi)) (i32.const 16))))
        (v128.store offset=16 (local.get $dst)
          (i32x4.add
            (f32x4.mul (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $em)) (i32.const 13)) (local.get $cx2p112))
            (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $hi)) (i32.const 16))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $next))))

  ;; f32 -> f16, round to nearest even, 8 lanes per step: two i32x4 results packed by an unsigned saturating
  ;; narrow (exact: every lane is in [0, 0xffff]). With a = |x| bits and s13 = a >>> 13:
  ;; normal: (a - (112 << 23) + 0xfff + (s13 & 1)) >>> 13, capped at 0x7c00 by an unsigned min (so every
  ;; |x| >= 65520, Inf and NaN give 0x7c00; the rounding carry reaches Inf exactly at 65520).
  ;; |x| < 2^-14: |x| + 0.5 in f32 arithmetic rounds to a multiple of 2^-24, the f16 subnormal step, so the low
  ;; bits of its pattern are the f16 code. NaN: OR in the quiet bit and the top 10 payload bits (s13 & 0x3ff).
  (func (export "f32_to_f16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $u v128) (local $a v128) (local $s13 v128) (local $lo v128) (local $cabs v128)
    (local $c8000 v128) (local $cinf v128) (local $c3ff v128) (local $c200 v128) (local $chalf v128)
    (local $crebias v128) (local $c1 v128) (local $c7c00 v128) (local $cminnorm v128)
    (local.set $cabs (v128.load (i32.const 524400)))
    (local.set $c8000 (v128.load (i32.const 524416)))
    (local.set $cinf (v128.load (i32.const 524432)))
    (local.set $c3ff (v128.load (i32.const 524448)))
    (local.set $c200 (v128.load (i32.const 524464)))
    (local.set $chalf (v128.load (i32.const 524480)))
    (local.set $crebias (v128.load (i32.const 524496)))
    (local.set $c1 (v128.load (i32.const 524512)))
    (local.set $c7c00 (v128.load (i32.const 524528)))
    (local.set $cminnorm (v128.load (i32.const 524544)))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $lo
          (block (result v128)
        (local.set $u (v128.load (local.get $src)))
        (local.set $a (v128.and (local.get $u) (local.get $cabs)))
        (local.set $s13 (i32x4.shr_u (local.get $a) (i32.const 13)))
        (v128.or
          (v128.or
            (v128.and (i32x4.shr_u (local.get $u) (i32.const 16)) (local.get $c8000))
            (v128.and
              (i32x4.gt_s (local.get $a) (local.get $cinf))
              (v128.or (v128.and (local.get $s13) (local.get $c3ff)) (local.get $c200))))
          (v128.bitselect
            (i32x4.sub (f32x4.add (local.get $a) (local.get $chalf)) (local.get $chalf))
            (i32x4.min_u
              (i32x4.shr_u
                (i32x4.add (i32x4.add (local.get $a) (local.get $crebias)) (v128.and (local.get $s13) (local.get $c1)))
                (i32.const 13))
              (local.get $c7c00))
            (i32x4.lt_s (local.get $a) (local.get $cminnorm))))))
        (v128.store (local.get $dst)
          (i16x8.narrow_i32x4_u
            (local.get $lo)
            (block (result v128)
        (local.set $u (v128.load offset=16 (local.get $src)))
        (local.set $a (v128.and (local.get $u) (local.get $cabs)))
        (local.set $s13 (i32x4.shr_u (local.get $a) (i32.const 13)))
        (v128.or
          (v128.or
            (v128.and (i32x4.shr_u (local.get $u) (i32.const 16)) (local.get $c8000))
            (v128.and
              (i32x4.gt_s (local.get $a) (local.get $cinf))
              (v128.or (v128.and (local.get $s13) (local.get $c3ff)) (local.get $c200))))
          (v128.bitselect
            (i32x4.sub (f32x4.add (local.get $a) (local.get $chalf)) (local.get $chalf))
            (i32x4.min_u
              (i32x4.shr_u
                (i32x4.add (i32x4.add (local.get $a) (local.get $crebias)) (v128.and (local.get $s13) (local.get $c1)))
                (i32.const 13))
              (local.get $c7c00))
            (i32x4.lt_s (local.get $a) (local.get $cminnorm)))))))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br $next))))
)
