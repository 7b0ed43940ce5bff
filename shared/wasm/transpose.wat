;; Matrix transpose as a WebAssembly SIMD kernel: blocks of 4 x 4 float32s, each transposed in
;; registers with eight shuffles; the rows and columns beyond the last full block one value at a
;; time. A transpose only moves values, so the result is exact. tfjs's wasm Transpose took
;; ~1.4 ms for a 512 x 512 matrix here; the Dense gradient needs three such per step (one weight
;; kernel, two activations).
;;
;; `src` holds a rows x cols matrix (row-major), `dst` receives cols x rows; both are byte
;; offsets into the exported memory and must not overlap.
;; Assembled into transpose-binary.ts by `npm run build:wasm`.
(module
  (memory (export "memory") 1)

  (func (export "transpose") (param $src i32) (param $dst i32) (param $rows i32) (param $cols i32)
    (local $i i32) (local $j i32) (local $rows4 i32) (local $cols4 i32)
    (local $srcRow i32) (local $dstRow i32) (local $srcStride i32) (local $dstStride i32)
    (local $p i32) (local $q i32) (local $band i32) (local $bandEnd i32)
    (local $R0 v128) (local $R1 v128) (local $R2 v128) (local $R3 v128)
    (local $T0 v128) (local $T1 v128) (local $T2 v128) (local $T3 v128)
    (local.set $rows4 (i32.and (local.get $rows) (i32.const -4)))
    (local.set $cols4 (i32.and (local.get $cols) (i32.const -4)))
    (local.set $srcStride (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $dstStride (i32.shl (local.get $rows) (i32.const 2)))
    ;; full 4 x 4 blocks, in bands of 32 rows: a band writes whole 128-byte runs of the result
    ;; (16 rows took 2.4x as long for a 1024 x 512 matrix here, 64 no less)
    (local.set $band (i32.const 0))
    (block $bandsDone
      (loop $nextBand
        (br_if $bandsDone (i32.ge_u (local.get $band) (local.get $rows4)))
        (local.set $bandEnd (select (i32.add (local.get $band) (i32.const 32)) (local.get $rows4)
          (i32.lt_u (i32.add (local.get $band) (i32.const 32)) (local.get $rows4))))
        (local.set $j (i32.const 0))
        (block $colsDone
          (loop $colBlock
            (br_if $colsDone (i32.ge_u (local.get $j) (local.get $cols4)))
            (local.set $i (local.get $band))
            (block $blocksDone
              (loop $block
                (br_if $blocksDone (i32.ge_u (local.get $i) (local.get $bandEnd)))
                ;; p: src[i][j]; q: dst[j][i]
                (local.set $p (i32.add (local.get $src)
                  (i32.shl (i32.add (i32.mul (local.get $i) (local.get $cols)) (local.get $j)) (i32.const 2))))
                (local.set $q (i32.add (local.get $dst)
                  (i32.shl (i32.add (i32.mul (local.get $j) (local.get $rows)) (local.get $i)) (i32.const 2))))
                (local.set $R0 (v128.load (local.get $p)))
                (local.set $R1 (v128.load (i32.add (local.get $p) (local.get $srcStride))))
                (local.set $R2 (v128.load (i32.add (local.get $p) (i32.shl (local.get $srcStride) (i32.const 1)))))
                (local.set $R3 (v128.load (i32.add (local.get $p) (i32.mul (local.get $srcStride) (i32.const 3)))))
                ;; T0 = a0 b0 a1 b1, T1 = a2 b2 a3 b3, T2 = c0 d0 c1 d1, T3 = c2 d2 c3 d3
                (local.set $T0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $R0) (local.get $R1)))
                (local.set $T1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $R0) (local.get $R1)))
                (local.set $T2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $R2) (local.get $R3)))
                (local.set $T3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $R2) (local.get $R3)))
                ;; column k of the block = row k of the result: a_k b_k c_k d_k
                (v128.store (local.get $q)
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $T0) (local.get $T2)))
                (v128.store (i32.add (local.get $q) (local.get $dstStride))
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $T0) (local.get $T2)))
                (v128.store (i32.add (local.get $q) (i32.shl (local.get $dstStride) (i32.const 1)))
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $T1) (local.get $T3)))
                (v128.store (i32.add (local.get $q) (i32.mul (local.get $dstStride) (i32.const 3)))
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $T1) (local.get $T3)))
                (local.set $i (i32.add (local.get $i) (i32.const 4)))
                (br $block)))
            (local.set $j (i32.add (local.get $j) (i32.const 4)))
            (br $colBlock)))
        (local.set $band (local.get $bandEnd))
        (br $nextBand)))
    ;; the last cols % 4 columns of the full row blocks' rows, and every column of the last rows % 4 rows
    (local.set $i (i32.const 0))
    (block $edgeDone
      (loop $edgeRow
        (br_if $edgeDone (i32.ge_u (local.get $i) (local.get $rows)))
        (local.set $j (select (local.get $cols4) (i32.const 0) (i32.lt_u (local.get $i) (local.get $rows4))))
        (local.set $srcRow (i32.add (local.get $src) (i32.mul (local.get $i) (local.get $srcStride))))
        (local.set $dstRow (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))))
        (block $edgeColsDone
          (loop $edgeCol
            (br_if $edgeColsDone (i32.ge_u (local.get $j) (local.get $cols)))
            (f32.store (i32.add (local.get $dstRow) (i32.mul (local.get $j) (local.get $dstStride)))
              (f32.load (i32.add (local.get $srcRow) (i32.shl (local.get $j) (i32.const 2)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $edgeCol)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $edgeRow)))
  )
)
