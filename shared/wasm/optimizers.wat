;; The optimizers' update rules as WebAssembly SIMD kernels, four float32 lanes at a time.
;;
;; Each function does exactly the float32 operations of the JavaScript reference in
;; shared/math/optimizers.ts, in the same order (and so of tf.train.*): f32x4 add, mul, div and
;; sqrt are IEEE float32 operations, correctly rounded like Math.fround of the float64 result, so
;; a kernel gives the same bits as the reference (tested in test/wasm-kernels.test.ts).
;;
;; Arrays are byte offsets into the exported memory; `n` counts float32s and is a multiple of 4
;; (the arena pads each array; the padding holds zeros, which every rule maps to zeros).
;; Assembled into optimizers-binary.ts by `npm run build:wasm`.
(module
  (memory (export "memory") 1)

  ;; Adam (tf.train.adam):
  ;;   m = m*b1 + g*(1-b1);  v = v*b2 + (g*g)*(1-b2)
  ;;   w = ((m/c1) / (sqrt(v/c2) + eps)) * -lr + w      with c1 = 1 - b1^t, c2 = 1 - b2^t
  (func (export "adam")
    (param $w i32) (param $g i32) (param $m i32) (param $v i32) (param $n i32)
    (param $b1 f32) (param $b2 f32) (param $oneMinusB1 f32) (param $oneMinusB2 f32)
    (param $c1 f32) (param $c2 f32) (param $eps f32) (param $negLr f32)
    (local $i i32) (local $end i32)
    (local $B1 v128) (local $B2 v128) (local $OMB1 v128) (local $OMB2 v128)
    (local $C1 v128) (local $C2 v128) (local $EPS v128) (local $NLR v128)
    (local $G v128) (local $M v128) (local $V v128)
    (local.set $B1 (f32x4.splat (local.get $b1)))
    (local.set $B2 (f32x4.splat (local.get $b2)))
    (local.set $OMB1 (f32x4.splat (local.get $oneMinusB1)))
    (local.set $OMB2 (f32x4.splat (local.get $oneMinusB2)))
    (local.set $C1 (f32x4.splat (local.get $c1)))
    (local.set $C2 (f32x4.splat (local.get $c2)))
    (local.set $EPS (f32x4.splat (local.get $eps)))
    (local.set $NLR (f32x4.splat (local.get $negLr)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $G (v128.load (i32.add (local.get $g) (local.get $i))))
        (local.set $M (f32x4.add
          (f32x4.mul (v128.load (i32.add (local.get $m) (local.get $i))) (local.get $B1))
          (f32x4.mul (local.get $G) (local.get $OMB1))))
        (local.set $V (f32x4.add
          (f32x4.mul (v128.load (i32.add (local.get $v) (local.get $i))) (local.get $B2))
          (f32x4.mul (f32x4.mul (local.get $G) (local.get $G)) (local.get $OMB2))))
        (v128.store (i32.add (local.get $m) (local.get $i)) (local.get $M))
        (v128.store (i32.add (local.get $v) (local.get $i)) (local.get $V))
        (v128.store (i32.add (local.get $w) (local.get $i))
          (f32x4.add
            (f32x4.mul
              (f32x4.div
                (f32x4.div (local.get $M) (local.get $C1))
                (f32x4.add (f32x4.sqrt (f32x4.div (local.get $V) (local.get $C2))) (local.get $EPS)))
              (local.get $NLR))
            (v128.load (i32.add (local.get $w) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; Plain SGD (tf.train.sgd):  w = (-lr)*g + w
  (func (export "sgd")
    (param $w i32) (param $g i32) (param $n i32) (param $negLr f32)
    (local $i i32) (local $end i32) (local $NLR v128)
    (local.set $NLR (f32x4.splat (local.get $negLr)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (v128.store (i32.add (local.get $w) (local.get $i))
          (f32x4.add
            (f32x4.mul (local.get $NLR) (v128.load (i32.add (local.get $g) (local.get $i))))
            (v128.load (i32.add (local.get $w) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; SGD with momentum (tf.train.momentum):
  ;;   a = mom*a + g;  d = nesterov ? g + a*mom : a;  w = (-lr)*d + w
  (func (export "momentum")
    (param $w i32) (param $g i32) (param $a i32) (param $n i32)
    (param $negLr f32) (param $mom f32) (param $nesterov i32)
    (local $i i32) (local $end i32) (local $NLR v128) (local $MOM v128)
    (local $G v128) (local $A v128) (local $D v128)
    (local.set $NLR (f32x4.splat (local.get $negLr)))
    (local.set $MOM (f32x4.splat (local.get $mom)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $G (v128.load (i32.add (local.get $g) (local.get $i))))
        (local.set $A (f32x4.add
          (f32x4.mul (local.get $MOM) (v128.load (i32.add (local.get $a) (local.get $i))))
          (local.get $G)))
        (v128.store (i32.add (local.get $a) (local.get $i)) (local.get $A))
        (if (local.get $nesterov)
          (then (local.set $D (f32x4.add (local.get $G) (f32x4.mul (local.get $A) (local.get $MOM)))))
          (else (local.set $D (local.get $A))))
        (v128.store (i32.add (local.get $w) (local.get $i))
          (f32x4.add
            (f32x4.mul (local.get $NLR) (local.get $D))
            (v128.load (i32.add (local.get $w) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))

  ;; RMSProp, not centred (tf.train.rmsprop):
  ;;   s = s*rho + (g*g)*(1-rho);  mo = mo*mom + (g*lr) / sqrt(s + eps);  w = w - mo
  (func (export "rmsprop")
    (param $w i32) (param $g i32) (param $s i32) (param $mo i32) (param $n i32)
    (param $rho f32) (param $oneMinusRho f32) (param $lr f32) (param $mom f32) (param $eps f32)
    (local $i i32) (local $end i32)
    (local $RHO v128) (local $OMR v128) (local $LR v128) (local $MOM v128) (local $EPS v128)
    (local $G v128) (local $S v128) (local $MO v128)
    (local.set $RHO (f32x4.splat (local.get $rho)))
    (local.set $OMR (f32x4.splat (local.get $oneMinusRho)))
    (local.set $LR (f32x4.splat (local.get $lr)))
    (local.set $MOM (f32x4.splat (local.get $mom)))
    (local.set $EPS (f32x4.splat (local.get $eps)))
    (local.set $end (i32.shl (local.get $n) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $G (v128.load (i32.add (local.get $g) (local.get $i))))
        (local.set $S (f32x4.add
          (f32x4.mul (v128.load (i32.add (local.get $s) (local.get $i))) (local.get $RHO))
          (f32x4.mul (f32x4.mul (local.get $G) (local.get $G)) (local.get $OMR))))
        (v128.store (i32.add (local.get $s) (local.get $i)) (local.get $S))
        (local.set $MO (f32x4.add
          (f32x4.mul (v128.load (i32.add (local.get $mo) (local.get $i))) (local.get $MOM))
          (f32x4.div
            (f32x4.mul (local.get $G) (local.get $LR))
            (f32x4.sqrt (f32x4.add (local.get $S) (local.get $EPS))))))
        (v128.store (i32.add (local.get $mo) (local.get $i)) (local.get $MO))
        (v128.store (i32.add (local.get $w) (local.get $i))
          (f32x4.sub (v128.load (i32.add (local.get $w) (local.get $i))) (local.get $MO)))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $next))))
)
