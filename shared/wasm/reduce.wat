;; The gradient reduction (shared/math/reduce.ts) as a WebAssembly SIMD kernel: the weighted mean
;; of k parts, in one pass, with the check for NaN and infinity folded in.
;;
;; Per element it does exactly the float64 operations of the JavaScript reference, in the same
;; order: sum = ((0 + c0*g0) + c1*g1) + ..., then sum / total, rounded once to float32. f64x2 mul,
;; add and div are IEEE float64 operations and f32x4.demote_f64x2_zero rounds to nearest even like
;; a store into a Float32Array, so the mean has the reference's bits (test/wasm-kernels.test.ts).
;;
;; Memory: a table of `parts` entries of 16 bytes at byte offset `table` (an i32 byte offset of
;; the part's gradient, 4 bytes unused, the part's sample count as f64), the parts' gradients,
;; and `out`. `n` counts float32s and is a multiple of 4 (the caller pads with zeros).
;; Assembled into reduce-binary.ts by `npm run build:wasm`.
(module
  (memory (export "memory") 1)

  ;; Writes the weighted mean to `out`; returns 1 when every value of it is finite, else 0.
  ;; (x - x is 0 for finite x and NaN for NaN and infinities; the lanes of Z add those up.)
  (func (export "mean")
    (param $table i32) (param $parts i32) (param $out i32) (param $n i32) (param $total f64)
    (result i32)
    (local $i i32) (local $end i32) (local $e i32) (local $tableEnd i32)
    (local $T v128) (local $Z v128) (local $G v128) (local $C v128) (local $LO v128) (local $HI v128)
    (local.set $T (f64x2.splat (local.get $total)))
    (local.set $Z (f64x2.splat (f64.const 0)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (local.set $tableEnd (i32.add (local.get $table) (i32.shl (local.get $parts) (i32.const 4))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $LO (f64x2.splat (f64.const 0)))
        (local.set $HI (f64x2.splat (f64.const 0)))
        (local.set $e (local.get $table))
        (block $summed
          (loop $part
            (br_if $summed (i32.ge_u (local.get $e) (local.get $tableEnd)))
            (local.set $G (v128.load (i32.add (i32.load (local.get $e)) (local.get $i))))
            (local.set $C (f64x2.splat (f64.load offset=8 (local.get $e))))
            (local.set $LO (f64x2.add (local.get $LO)
              (f64x2.mul (local.get $C) (f64x2.promote_low_f32x4 (local.get $G)))))
            (local.set $HI (f64x2.add (local.get $HI)
              (f64x2.mul (local.get $C) (f64x2.promote_low_f32x4
                (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $G) (local.get $G))))))
            (local.set $e (i32.add (local.get $e) (i32.const 16)))
            (br $part)))
        (local.set $LO (f64x2.div (local.get $LO) (local.get $T)))
        (local.set $HI (f64x2.div (local.get $HI) (local.get $T)))
        (local.set $Z (f64x2.add (local.get $Z) (f64x2.sub (local.get $LO) (local.get $LO))))
        (local.set $Z (f64x2.add (local.get $Z) (f64x2.sub (local.get $HI) (local.get $HI))))
        (v128.store (i32.add (local.get $out) (local.get $i))
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
            (f32x4.demote_f64x2_zero (local.get $LO))
            (f32x4.demote_f64x2_zero (local.get $HI))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next)))
    ;; finite iff both lanes of Z are 0 (a NaN lane compares unequal)
    (i32.and
      (f64.eq (f64x2.extract_lane 0 (local.get $Z)) (f64.const 0))
      (f64.eq (f64x2.extract_lane 1 (local.get $Z)) (f64.const 0))))
)
