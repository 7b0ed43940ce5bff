;; float16 gradients on the wire (shared/math/float16.ts) as WebAssembly SIMD kernels: the largest
;; finite magnitude, float32 -> float16 bits after scaling, and float16 bits -> float32 after
;; unscaling. Each gives the bits of the JavaScript reference (test/wasm-kernels.test.ts).
;;
;; Offsets are bytes into the exported memory; `n` counts values and is a multiple of 8 (the
;; caller pads: float32 arrays with zeros, which map to zero halves and back).
;; Assembled into float16-binary.ts by `npm run build:wasm`.
(module
  (memory (export "memory") 1)

  ;; The largest |x| over the finite values (NaN and infinities left out; 0 when there are none).
  (func (export "maxAbs") (param $src i32) (param $n i32) (result f32)
    (local $i i32) (local $end i32) (local $X v128) (local $M v128)
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $X (f32x4.abs (v128.load (i32.add (local.get $src) (local.get $i)))))
        ;; finite: |x| < Infinity (false for NaN and Infinity); others count as 0. Non-negative
        ;; floats order as their bits do, and an integer max is one instruction (f32x4.max, with
        ;; its NaN and -0 rules, is several).
        (local.set $M (i32x4.max_s (local.get $M)
          (v128.and (local.get $X) (f32x4.lt (local.get $X) (f32x4.splat (f32.const inf))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next)))
    (local.set $M (i32x4.max_s (local.get $M) (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $M) (local.get $M))))
    (local.set $M (i32x4.max_s (local.get $M) (i8x16.shuffle 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 (local.get $M) (local.get $M))))
    (f32x4.extract_lane 0 (local.get $M)))

  ;; Four float32 bit patterns to float16 bit patterns (in the low 16 bits of each lane), rounded
  ;; to nearest, ties to even, as toFloat16Bits does (NaN of either sign: 0x7e00).
  (func $halves (param $B v128) (result v128)
    (local $A v128) (local $N v128) (local $S v128) (local $H v128)
    (local.set $A (v128.and (local.get $B) (i32x4.splat (i32.const 0x7fffffff))))
    ;; normal halves: drop 13 mantissa bits rounding to nearest even, rebias the exponent (127 -> 15);
    ;; a carry moves into the exponent, up to Infinity; larger values clamp to Infinity. (|x|'s bits
    ;; are non-negative as signed integers, so signed compares, single instructions, serve; lanes
    ;; where the subtraction goes below zero are subnormal ones, replaced next.)
    (local.set $N (i32x4.min_s
      (i32x4.sub
        (i32x4.shr_u
          (i32x4.add (i32x4.add (local.get $A) (i32x4.splat (i32.const 0xfff)))
            (v128.and (i32x4.shr_u (local.get $A) (i32.const 13)) (i32x4.splat (i32.const 1))))
          (i32.const 13))
        (i32x4.splat (i32.const 0x1c000)))
      (i32x4.splat (i32.const 0x7c00))))
    ;; subnormal halves (|x| < 2^-14): |x| + 0.5 in float32 rounds |x| to a multiple of 2^-24
    (local.set $S (i32x4.sub
      (f32x4.add (local.get $A) (f32x4.splat (f32.const 0.5)))
      (i32x4.splat (i32.const 0x3f000000))))
    (local.set $H (v128.bitselect (local.get $S) (local.get $N)
      (i32x4.lt_s (local.get $A) (i32x4.splat (i32.const 0x38800000)))))
    ;; Infinity stays Infinity (the clamp above) with its sign; NaN becomes 0x7e00, without one
    (local.set $H (v128.or (local.get $H)
      (v128.and (i32x4.shr_u (local.get $B) (i32.const 16)) (i32x4.splat (i32.const 0x8000)))))
    (v128.bitselect (i32x4.splat (i32.const 0x7e00)) (local.get $H)
      (i32x4.gt_s (local.get $A) (i32x4.splat (i32.const 0x7f800000)))))

  ;; dst (u16) = float16 bits of src (f32) * scale1 * scale2: powers of two whose product is the
  ;; scale (two, as 2^128 and more are not float32s; each product is exact, as in float64).
  (func (export "encode") (param $src i32) (param $dst i32) (param $n i32) (param $scale1 f32) (param $scale2 f32)
    (local $i i32) (local $o i32) (local $end i32) (local $K v128) (local $L v128)
    (local.set $K (f32x4.splat (local.get $scale1)))
    (local.set $L (f32x4.splat (local.get $scale2)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (v128.store (i32.add (local.get $dst) (local.get $o))
          (i16x8.narrow_i32x4_u
            (call $halves (f32x4.mul (f32x4.mul (v128.load (i32.add (local.get $src) (local.get $i))) (local.get $K)) (local.get $L)))
            (call $halves (f32x4.mul (f32x4.mul (v128.load offset=16 (i32.add (local.get $src) (local.get $i))) (local.get $K)) (local.get $L)))))
        (local.set $i (i32.add (local.get $i) (i32.const 32)))
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (br $next))))

  ;; Four float16 bit patterns (low 16 bits of each lane) to float32 bit patterns, exactly.
  (func $floats (param $H v128) (result v128)
    (local $E v128) (local $M v128) (local $F v128)
    (local.set $E (v128.and (local.get $H) (i32x4.splat (i32.const 0x7c00))))
    (local.set $M (v128.and (local.get $H) (i32x4.splat (i32.const 0x3ff))))
    ;; normal: exponent and mantissa shifted into place, exponent rebiased (15 -> 127)
    (local.set $F (i32x4.add (i32x4.shl (v128.and (local.get $H) (i32x4.splat (i32.const 0x7fff))) (i32.const 13))
      (i32x4.splat (i32.const 0x38000000))))
    ;; subnormal (exponent 0): mantissa * 2^-24
    (local.set $F (v128.bitselect
      (f32x4.mul (f32x4.convert_i32x4_u (local.get $M)) (f32x4.splat (f32.const 0x1p-24)))
      (local.get $F)
      (i32x4.eq (local.get $E) (i32x4.splat (i32.const 0)))))
    ;; Infinity and NaN (exponent 31): the float32 exponent is all ones
    (local.set $F (v128.bitselect
      (v128.or (i32x4.splat (i32.const 0x7f800000)) (i32x4.shl (local.get $M) (i32.const 13)))
      (local.get $F)
      (i32x4.eq (local.get $E) (i32x4.splat (i32.const 0x7c00)))))
    (v128.or (local.get $F)
      (i32x4.shl (v128.and (local.get $H) (i32x4.splat (i32.const 0x8000))) (i32.const 16))))

  ;; dst (f32) = float32 of (float16 src) * unscale, the product taken in float64 and rounded once.
  (func (export "decode") (param $src i32) (param $dst i32) (param $n i32) (param $unscale f64)
    (local $i i32) (local $o i32) (local $end i32) (local $U v128) (local $P v128)
    (local.set $U (f64x2.splat (local.get $unscale)))
    (local.set $end (i32.shl (local.get $n) (i32.const 1)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $P (v128.load64_zero (i32.add (local.get $src) (local.get $i))))
        (call $store4 (i32.add (local.get $dst) (local.get $o))
          (call $floats (i32x4.extend_low_i16x8_u (local.get $P))) (local.get $U))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (br $next))))

  ;; Stores the four float32 lanes of F times U (f64x2), each product rounded once to float32.
  (func $store4 (param $at i32) (param $F v128) (param $U v128)
    (v128.store (local.get $at)
      (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
        (f32x4.demote_f64x2_zero (f64x2.mul (f64x2.promote_low_f32x4 (local.get $F)) (local.get $U)))
        (f32x4.demote_f64x2_zero (f64x2.mul
          (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $F) (local.get $F)))
          (local.get $U))))))
)
