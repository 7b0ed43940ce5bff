;; Max-pooling's argmax as a WebAssembly SIMD kernel: for each window of a channels-first input
;; whose windows tile it (stride = window, no padding), the flat index of its first largest value
;; in row-major window order (tfjs's choice among equal values, and onnxruntime's), as the int64
;; indices onnxruntime's MaxUnpool takes. onnxruntime's own MaxPool with indices took ~7 ms for
;; a 64 x 32 x 26 x 26 input here, where its MaxPool without them took ~1 ms.
;;
;; `src`: planes x h x w float32s; `dst`: planes x ho x wo int64s; byte offsets into the
;; exported memory. Index = plane * h * w + row * w + column. 2 x 2 windows go four at a time
;; (the even and odd columns of two rows deinterleaved by shuffles); other sizes and the last
;; windows of a row one at a time.
;; Assembled into max-pool-binary.ts by `npm run build:wasm`.
(module
  (memory (export "memory") 1)

  ;; one window's argmax: rows ph, columns pw, starting at flat index $at of a row of width $w
  (func $window (param $src i32) (param $at i32) (param $w i32) (param $ph i32) (param $pw i32) (result i32)
    (local $a i32) (local $b i32) (local $best i32) (local $max f32) (local $v f32) (local $row i32)
    (local.set $best (local.get $at))
    (local.set $max (f32.load (i32.add (local.get $src) (i32.shl (local.get $at) (i32.const 2)))))
    (local.set $a (i32.const 0))
    (loop $rows
      (local.set $row (i32.add (local.get $at) (i32.mul (local.get $a) (local.get $w))))
      (local.set $b (i32.const 0))
      (loop $cols
        (local.set $v (f32.load (i32.add (local.get $src) (i32.shl (i32.add (local.get $row) (local.get $b)) (i32.const 2)))))
        (if (f32.gt (local.get $v) (local.get $max))
          (then
            (local.set $max (local.get $v))
            (local.set $best (i32.add (local.get $row) (local.get $b)))))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br_if $cols (i32.lt_u (local.get $b) (local.get $pw))))
      (local.set $a (i32.add (local.get $a) (i32.const 1)))
      (br_if $rows (i32.lt_u (local.get $a) (local.get $ph))))
    (local.get $best))

  (func (export "argmax") (param $src i32) (param $dst i32) (param $planes i32) (param $h i32) (param $w i32)
    (param $ho i32) (param $wo i32) (param $ph i32) (param $pw i32)
    (local $p i32) (local $i i32) (local $j i32) (local $plane i32) (local $rowAt i32) (local $out i32)
    (local $wo4 i32) (local $r0 i32) (local $r1 i32)
    (local $A v128) (local $B v128) (local $x00 v128) (local $x01 v128) (local $x10 v128) (local $x11 v128)
    (local $m v128) (local $k v128) (local $c v128) (local $idx v128) (local $cols v128)
    ;; four 2 x 2 windows at a time only where a row has four
    (local.set $wo4 (select (i32.and (local.get $wo) (i32.const -4)) (i32.const 0)
      (i32.and (i32.eq (local.get $ph) (i32.const 2)) (i32.eq (local.get $pw) (i32.const 2)))))
    (local.set $out (local.get $dst))
    (local.set $p (i32.const 0))
    (block $planesDone
      (loop $planeLoop
        (br_if $planesDone (i32.ge_u (local.get $p) (local.get $planes)))
        (local.set $plane (i32.mul (local.get $p) (i32.mul (local.get $h) (local.get $w))))
        (local.set $i (i32.const 0))
        (block $rowsDone
          (loop $rowLoop
            (br_if $rowsDone (i32.ge_u (local.get $i) (local.get $ho)))
            (local.set $rowAt (i32.add (local.get $plane) (i32.mul (i32.mul (local.get $i) (local.get $ph)) (local.get $w))))
            (local.set $j (i32.const 0))
            (block $quadsDone
              (loop $quad
                (br_if $quadsDone (i32.ge_u (local.get $j) (local.get $wo4)))
                ;; r0, r1: byte addresses of the windows' top-left values in the two rows
                (local.set $r0 (i32.add (local.get $src) (i32.shl (i32.add (local.get $rowAt) (i32.shl (local.get $j) (i32.const 1))) (i32.const 2))))
                (local.set $r1 (i32.add (local.get $r0) (i32.shl (local.get $w) (i32.const 2))))
                (local.set $A (v128.load (local.get $r0)))
                (local.set $B (v128.load offset=16 (local.get $r0)))
                (local.set $x00 (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $A) (local.get $B)))
                (local.set $x01 (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $A) (local.get $B)))
                (local.set $A (v128.load (local.get $r1)))
                (local.set $B (v128.load offset=16 (local.get $r1)))
                (local.set $x10 (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $A) (local.get $B)))
                (local.set $x11 (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $A) (local.get $B)))
                ;; k: the offset into each window, 0 (top left), 1, w, w + 1, taken on strictly greater
                (local.set $m (local.get $x00))
                (local.set $k (v128.const i32x4 0 0 0 0))
                (local.set $c (f32x4.gt (local.get $x01) (local.get $m)))
                (local.set $m (v128.bitselect (local.get $x01) (local.get $m) (local.get $c)))
                (local.set $k (v128.bitselect (v128.const i32x4 1 1 1 1) (local.get $k) (local.get $c)))
                (local.set $c (f32x4.gt (local.get $x10) (local.get $m)))
                (local.set $m (v128.bitselect (local.get $x10) (local.get $m) (local.get $c)))
                (local.set $k (v128.bitselect (i32x4.splat (local.get $w)) (local.get $k) (local.get $c)))
                (local.set $c (f32x4.gt (local.get $x11) (local.get $m)))
                (local.set $k (v128.bitselect (i32x4.splat (i32.add (local.get $w) (i32.const 1))) (local.get $k) (local.get $c)))
                ;; the windows' top-left indices: rowAt + 2j + (0, 2, 4, 6)
                (local.set $cols (i32x4.add (i32x4.splat (i32.add (local.get $rowAt) (i32.shl (local.get $j) (i32.const 1))))
                  (v128.const i32x4 0 2 4 6)))
                (local.set $idx (i32x4.add (local.get $cols) (local.get $k)))
                (v128.store (local.get $out) (i64x2.extend_low_i32x4_u (local.get $idx)))
                (v128.store offset=16 (local.get $out) (i64x2.extend_high_i32x4_u (local.get $idx)))
                (local.set $out (i32.add (local.get $out) (i32.const 32)))
                (local.set $j (i32.add (local.get $j) (i32.const 4)))
                (br $quad)))
            (block $windowsDone
              (loop $single
                (br_if $windowsDone (i32.ge_u (local.get $j) (local.get $wo)))
                (i64.store (local.get $out) (i64.extend_i32_u
                  (call $window (local.get $src) (i32.add (local.get $rowAt) (i32.mul (local.get $j) (local.get $pw)))
                    (local.get $w) (local.get $ph) (local.get $pw))))
                (local.set $out (i32.add (local.get $out) (i32.const 8)))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $single)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $rowLoop)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $planeLoop))))
)
