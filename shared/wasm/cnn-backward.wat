;; Two loops of a CNN's backward pass as WebAssembly SIMD kernels, four channels at a time
;; (NHWC, the channel count a multiple of 4; cnn-backward-kernel.ts calls them and keeps the
;; other cases in JavaScript):
;; - maxPoolGrad: each window's gradient goes to the first largest input of the window (rows,
;;   then columns; a strictly larger value replaces the best), the cpu backend's rule, so the
;;   values are the same; `out` must be zero on entry.
;; - sumRows: the sum of `rows` rows of `channels` float32s, each channel added in row order in
;;   float32: the bits of the stock Sum kernel and of the JavaScript loop it replaces.
;; - im2colT and col2im: a convolution's patches, laid out transposed (row k = filter tap
;;   (fh, fw, channel) under every output position, zeros over the padding), and their
;;   gradients added back onto the input; any channel count (four at a time in col2im). They
;;   only move and add values in the order the JavaScript loops of convolution.ts did.
;; - im2col: the patches row by row (row m = output position, its K = fH * fW * C taps in the
;;   filter's order), each run of taps in the input one memory.copy: what a product on
;;   onnxruntime takes without a transpose (the native backend).
;; Array arguments are byte offsets into the exported memory.
;; Assembled into cnn-backward-binary.ts by `npm run build:wasm`.
(module
  (memory (export "memory") 1)

  (func (export "maxPoolGrad")
    (param $x i32) (param $dy i32) (param $out i32)
    (param $batch i32) (param $inH i32) (param $inW i32) (param $C i32)
    (param $outH i32) (param $outW i32) (param $sH i32) (param $sW i32)
    (param $fH i32) (param $fW i32) (param $padT i32) (param $padL i32)
    (local $n i32) (local $oh i32) (local $ow i32) (local $c i32) (local $r i32) (local $col i32)
    (local $rMin i32) (local $rMax i32) (local $cMin i32) (local $cMax i32) (local $t i32)
    (local $g i32) (local $off i32) (local $i i32) (local $a i32)
    (local $v v128) (local $best v128) (local $idx v128) (local $m v128)
    (local.set $g (local.get $dy))
    (local.set $n (i32.const 0))
    (block $nDone (loop $nLoop
      (br_if $nDone (i32.ge_s (local.get $n) (local.get $batch)))
      (local.set $oh (i32.const 0))
      (block $ohDone (loop $ohLoop
        (br_if $ohDone (i32.ge_s (local.get $oh) (local.get $outH)))
        (local.set $t (i32.sub (i32.mul (local.get $oh) (local.get $sH)) (local.get $padT)))
        (local.set $rMin (select (local.get $t) (i32.const 0) (i32.gt_s (local.get $t) (i32.const 0))))
        (local.set $t (i32.add (local.get $t) (local.get $fH)))
        (local.set $rMax (select (local.get $t) (local.get $inH) (i32.lt_s (local.get $t) (local.get $inH))))
        (local.set $ow (i32.const 0))
        (block $owDone (loop $owLoop
          (br_if $owDone (i32.ge_s (local.get $ow) (local.get $outW)))
          (local.set $t (i32.sub (i32.mul (local.get $ow) (local.get $sW)) (local.get $padL)))
          (local.set $cMin (select (local.get $t) (i32.const 0) (i32.gt_s (local.get $t) (i32.const 0))))
          (local.set $t (i32.add (local.get $t) (local.get $fW)))
          (local.set $cMax (select (local.get $t) (local.get $inW) (i32.lt_s (local.get $t) (local.get $inW))))
          (local.set $c (i32.const 0))
          (block $cDone (loop $cLoop
            (br_if $cDone (i32.ge_s (local.get $c) (local.get $C)))
            (local.set $best (f32x4.splat (f32.const -inf)))
            (local.set $idx (i32x4.splat (i32.const -1)))
            (local.set $r (local.get $rMin))
            (block $rDone (loop $rLoop
              (br_if $rDone (i32.ge_s (local.get $r) (local.get $rMax)))
              (local.set $col (local.get $cMin))
              (block $colDone (loop $colLoop
                (br_if $colDone (i32.ge_s (local.get $col) (local.get $cMax)))
                ;; off: element index of x[n][r][col][c]
                (local.set $off (i32.add (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $n) (local.get $inH)) (local.get $r)) (local.get $inW)) (local.get $col)) (local.get $C)) (local.get $c)))
                (local.set $v (v128.load (i32.add (local.get $x) (i32.shl (local.get $off) (i32.const 2)))))
                (local.set $m (f32x4.gt (local.get $v) (local.get $best)))
                (local.set $best (v128.bitselect (local.get $v) (local.get $best) (local.get $m)))
                (local.set $idx (v128.bitselect (i32x4.add (i32x4.splat (local.get $off)) (v128.const i32x4 0 1 2 3)) (local.get $idx) (local.get $m)))
                (local.set $col (i32.add (local.get $col) (i32.const 1)))
                (br $colLoop)))
              (local.set $r (i32.add (local.get $r) (i32.const 1)))
              (br $rLoop)))
            ;; each lane's gradient onto its winner (none where the window saw no value)
            (local.set $i (i32x4.extract_lane 0 (local.get $idx)))
            (if (i32.ge_s (local.get $i) (i32.const 0)) (then
              (local.set $a (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))))
              (f32.store (local.get $a) (f32.add (f32.load (local.get $a)) (f32.load (local.get $g))))))
            (local.set $i (i32x4.extract_lane 1 (local.get $idx)))
            (if (i32.ge_s (local.get $i) (i32.const 0)) (then
              (local.set $a (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))))
              (f32.store (local.get $a) (f32.add (f32.load (local.get $a)) (f32.load offset=4 (local.get $g))))))
            (local.set $i (i32x4.extract_lane 2 (local.get $idx)))
            (if (i32.ge_s (local.get $i) (i32.const 0)) (then
              (local.set $a (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))))
              (f32.store (local.get $a) (f32.add (f32.load (local.get $a)) (f32.load offset=8 (local.get $g))))))
            (local.set $i (i32x4.extract_lane 3 (local.get $idx)))
            (if (i32.ge_s (local.get $i) (i32.const 0)) (then
              (local.set $a (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))))
              (f32.store (local.get $a) (f32.add (f32.load (local.get $a)) (f32.load offset=12 (local.get $g))))))
            (local.set $g (i32.add (local.get $g) (i32.const 16)))
            (local.set $c (i32.add (local.get $c) (i32.const 4)))
            (br $cLoop)))
          (local.set $ow (i32.add (local.get $ow) (i32.const 1)))
          (br $owLoop)))
        (local.set $oh (i32.add (local.get $oh) (i32.const 1)))
        (br $ohLoop)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $nLoop))))

  (func (export "sumRows") (param $src i32) (param $dst i32) (param $rows i32) (param $C i32)
    (local $r i32) (local $q i32) (local $p i32) (local $end i32)
    ;; dst = 0
    (local.set $q (i32.const 0))
    (block $zeroDone (loop $zero
      (br_if $zeroDone (i32.ge_s (local.get $q) (local.get $C)))
      (v128.store (i32.add (local.get $dst) (i32.shl (local.get $q) (i32.const 2))) (v128.const i32x4 0 0 0 0))
      (local.set $q (i32.add (local.get $q) (i32.const 4)))
      (br $zero)))
    (local.set $p (local.get $src))
    (local.set $end (i32.add (local.get $dst) (i32.shl (local.get $C) (i32.const 2))))
    (local.set $r (i32.const 0))
    (block $rowsDone (loop $row
      (br_if $rowsDone (i32.ge_s (local.get $r) (local.get $rows)))
      (local.set $q (local.get $dst))
      (block $rowDone (loop $group
        (br_if $rowDone (i32.ge_u (local.get $q) (local.get $end)))
        (v128.store (local.get $q) (f32x4.add (v128.load (local.get $q)) (v128.load (local.get $p))))
        (local.set $q (i32.add (local.get $q) (i32.const 16)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $group)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $row))))

  ;; colsT[((fh * fW + fw) * C + c) * M + m] = x[b][ih][iw][c], m = (b * outH + oh) * outW + ow
  (func (export "im2colT")
    (param $x i32) (param $cols i32)
    (param $batch i32) (param $inH i32) (param $inW i32) (param $C i32)
    (param $outH i32) (param $outW i32) (param $sH i32) (param $sW i32)
    (param $fH i32) (param $fW i32) (param $dH i32) (param $dW i32) (param $padT i32) (param $padL i32)
    (local $fh i32) (local $fw i32) (local $c i32) (local $b i32) (local $oh i32) (local $ow i32)
    (local $ih i32) (local $iw i32) (local $at i32) (local $line i32) (local $rowStride i32)
    (local.set $rowStride (i32.shl (i32.mul (local.get $inW) (local.get $C)) (i32.const 2)))
    (local.set $at (local.get $cols))
    (local.set $fh (i32.const 0))
    (block $fhDone (loop $fhLoop
      (br_if $fhDone (i32.ge_s (local.get $fh) (local.get $fH)))
      (local.set $fw (i32.const 0))
      (block $fwDone (loop $fwLoop
        (br_if $fwDone (i32.ge_s (local.get $fw) (local.get $fW)))
        (local.set $c (i32.const 0))
        (block $cDone (loop $cLoop
          (br_if $cDone (i32.ge_s (local.get $c) (local.get $C)))
          (local.set $b (i32.const 0))
          (block $bDone (loop $bLoop
            (br_if $bDone (i32.ge_s (local.get $b) (local.get $batch)))
            (local.set $oh (i32.const 0))
            (block $ohDone (loop $ohLoop
              (br_if $ohDone (i32.ge_s (local.get $oh) (local.get $outH)))
              (local.set $ih (i32.sub (i32.add (i32.mul (local.get $oh) (local.get $sH)) (i32.mul (local.get $fh) (local.get $dH))) (local.get $padT)))
              (if (i32.or (i32.lt_s (local.get $ih) (i32.const 0)) (i32.ge_s (local.get $ih) (local.get $inH)))
                (then
                  (memory.fill (local.get $at) (i32.const 0) (i32.shl (local.get $outW) (i32.const 2)))
                  (local.set $at (i32.add (local.get $at) (i32.shl (local.get $outW) (i32.const 2)))))
                (else
                  ;; line: byte offset of x[b][ih][0][c]
                  (local.set $line (i32.add (local.get $x) (i32.add
                    (i32.mul (i32.add (i32.mul (local.get $b) (local.get $inH)) (local.get $ih)) (local.get $rowStride))
                    (i32.shl (local.get $c) (i32.const 2)))))
                  (local.set $ow (i32.const 0))
                  (block $owDone (loop $owLoop
                    (br_if $owDone (i32.ge_s (local.get $ow) (local.get $outW)))
                    (local.set $iw (i32.sub (i32.add (i32.mul (local.get $ow) (local.get $sW)) (i32.mul (local.get $fw) (local.get $dW))) (local.get $padL)))
                    (f32.store (local.get $at)
                      (if (result f32) (i32.or (i32.lt_s (local.get $iw) (i32.const 0)) (i32.ge_s (local.get $iw) (local.get $inW)))
                        (then (f32.const 0))
                        (else (f32.load (i32.add (local.get $line) (i32.shl (i32.mul (local.get $iw) (local.get $C)) (i32.const 2)))))))
                    (local.set $at (i32.add (local.get $at) (i32.const 4)))
                    (local.set $ow (i32.add (local.get $ow) (i32.const 1)))
                    (br $owLoop)))))
              (local.set $oh (i32.add (local.get $oh) (i32.const 1)))
              (br $ohLoop)))
            (local.set $b (i32.add (local.get $b) (i32.const 1)))
            (br $bLoop)))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br $cLoop)))
        (local.set $fw (i32.add (local.get $fw) (i32.const 1)))
        (br $fwLoop)))
      (local.set $fh (i32.add (local.get $fh) (i32.const 1)))
      (br $fhLoop))))

  ;; dx[b][ih][iw][c] += cols[m][(fh * fW + fw) * C + c] for every output position m and tap in
  ;; the input; dx must be zero on entry
  (func (export "col2im")
    (param $cols i32) (param $dx i32)
    (param $batch i32) (param $inH i32) (param $inW i32) (param $C i32)
    (param $outH i32) (param $outW i32) (param $sH i32) (param $sW i32)
    (param $fH i32) (param $fW i32) (param $dH i32) (param $dW i32) (param $padT i32) (param $padL i32)
    (local $b i32) (local $oh i32) (local $ow i32) (local $fh i32) (local $fw i32) (local $ih i32) (local $iw i32)
    (local $at i32) (local $to i32) (local $c i32) (local $C4 i32) (local $runBytes i32)
    (local.set $C4 (i32.and (local.get $C) (i32.const -4)))
    (local.set $runBytes (i32.shl (local.get $C) (i32.const 2)))
    (local.set $at (local.get $cols))
    (local.set $b (i32.const 0))
    (block $bDone (loop $bLoop
      (br_if $bDone (i32.ge_s (local.get $b) (local.get $batch)))
      (local.set $oh (i32.const 0))
      (block $ohDone (loop $ohLoop
        (br_if $ohDone (i32.ge_s (local.get $oh) (local.get $outH)))
        (local.set $ow (i32.const 0))
        (block $owDone (loop $owLoop
          (br_if $owDone (i32.ge_s (local.get $ow) (local.get $outW)))
          (local.set $fh (i32.const 0))
          (block $fhDone (loop $fhLoop
            (br_if $fhDone (i32.ge_s (local.get $fh) (local.get $fH)))
            (local.set $ih (i32.sub (i32.add (i32.mul (local.get $oh) (local.get $sH)) (i32.mul (local.get $fh) (local.get $dH))) (local.get $padT)))
            (local.set $fw (i32.const 0))
            (block $fwDone (loop $fwLoop
              (br_if $fwDone (i32.ge_s (local.get $fw) (local.get $fW)))
              (local.set $iw (i32.sub (i32.add (i32.mul (local.get $ow) (local.get $sW)) (i32.mul (local.get $fw) (local.get $dW))) (local.get $padL)))
              (if (i32.eqz (i32.or
                    (i32.or (i32.lt_s (local.get $ih) (i32.const 0)) (i32.ge_s (local.get $ih) (local.get $inH)))
                    (i32.or (i32.lt_s (local.get $iw) (i32.const 0)) (i32.ge_s (local.get $iw) (local.get $inW)))))
                (then
                  (local.set $to (i32.add (local.get $dx) (i32.shl
                    (i32.mul (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $inH)) (local.get $ih)) (local.get $inW)) (local.get $iw)) (local.get $C))
                    (i32.const 2))))
                  (local.set $c (i32.const 0))
                  (block $vDone (loop $vLoop
                    (br_if $vDone (i32.ge_s (local.get $c) (local.get $C4)))
                    (v128.store (i32.add (local.get $to) (i32.shl (local.get $c) (i32.const 2)))
                      (f32x4.add (v128.load (i32.add (local.get $to) (i32.shl (local.get $c) (i32.const 2))))
                                 (v128.load (i32.add (local.get $at) (i32.shl (local.get $c) (i32.const 2))))))
                    (local.set $c (i32.add (local.get $c) (i32.const 4)))
                    (br $vLoop)))
                  (block $sDone (loop $sLoop
                    (br_if $sDone (i32.ge_s (local.get $c) (local.get $C)))
                    (f32.store (i32.add (local.get $to) (i32.shl (local.get $c) (i32.const 2)))
                      (f32.add (f32.load (i32.add (local.get $to) (i32.shl (local.get $c) (i32.const 2))))
                               (f32.load (i32.add (local.get $at) (i32.shl (local.get $c) (i32.const 2))))))
                    (local.set $c (i32.add (local.get $c) (i32.const 1)))
                    (br $sLoop)))))
              (local.set $at (i32.add (local.get $at) (local.get $runBytes)))
              (local.set $fw (i32.add (local.get $fw) (i32.const 1)))
              (br $fwLoop)))
            (local.set $fh (i32.add (local.get $fh) (i32.const 1)))
            (br $fhLoop)))
          (local.set $ow (i32.add (local.get $ow) (i32.const 1)))
          (br $owLoop)))
        (local.set $oh (i32.add (local.get $oh) (i32.const 1)))
        (br $ohLoop)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $bLoop))))

;; `bytes` (a multiple of 4) from `src` to `dst`: memory.copy for long runs, a loop of 4-byte
  ;; moves for short ones (a memory.copy call costs more than a few moves)
  (func $copy (param $dst i32) (param $src i32) (param $bytes i32)
    (local $end i32)
    (if (i32.ge_u (local.get $bytes) (i32.const 64))
      (then (memory.copy (local.get $dst) (local.get $src) (local.get $bytes)) (return)))
    (local.set $end (i32.add (local.get $dst) (local.get $bytes)))
    (block $done (loop $move
      (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
      (i32.store (local.get $dst) (i32.load (local.get $src)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
      (local.set $src (i32.add (local.get $src) (i32.const 4)))
      (br $move))))

  ;; cols[m][(fh * fW + fw) * C + c] = x[b][ih][iw][c], m = (b * outH + oh) * outW + ow; zeros
  ;; over the padding. A row of taps (fw = 0..fW-1) that lies inside the input with dilation 1
  ;; is one run of fW * C values; otherwise each tap's C values are copied (or zeroed) alone.
  (func (export "im2col")
    (param $x i32) (param $cols i32)
    (param $batch i32) (param $inH i32) (param $inW i32) (param $C i32)
    (param $outH i32) (param $outW i32) (param $sH i32) (param $sW i32)
    (param $fH i32) (param $fW i32) (param $dH i32) (param $dW i32) (param $padT i32) (param $padL i32)
    (local $b i32) (local $oh i32) (local $ow i32) (local $fh i32) (local $fw i32) (local $ih i32) (local $iw i32) (local $iw0 i32)
    (local $at i32) (local $line i32) (local $tapBytes i32) (local $runBytes i32) (local $rowStride i32)
    (local.set $tapBytes (i32.shl (local.get $C) (i32.const 2)))
    (local.set $runBytes (i32.mul (local.get $tapBytes) (local.get $fW)))
    (local.set $rowStride (i32.mul (local.get $inW) (local.get $tapBytes)))
    (local.set $at (local.get $cols))
    (local.set $b (i32.const 0))
    (block $bDone (loop $bLoop
      (br_if $bDone (i32.ge_s (local.get $b) (local.get $batch)))
      (local.set $oh (i32.const 0))
      (block $ohDone (loop $ohLoop
        (br_if $ohDone (i32.ge_s (local.get $oh) (local.get $outH)))
        (local.set $ow (i32.const 0))
        (block $owDone (loop $owLoop
          (br_if $owDone (i32.ge_s (local.get $ow) (local.get $outW)))
          (local.set $iw0 (i32.sub (i32.mul (local.get $ow) (local.get $sW)) (local.get $padL)))
          (local.set $fh (i32.const 0))
          (block $fhDone (loop $fhLoop
            (br_if $fhDone (i32.ge_s (local.get $fh) (local.get $fH)))
            (local.set $ih (i32.sub (i32.add (i32.mul (local.get $oh) (local.get $sH)) (i32.mul (local.get $fh) (local.get $dH))) (local.get $padT)))
            (if (i32.or (i32.lt_s (local.get $ih) (i32.const 0)) (i32.ge_s (local.get $ih) (local.get $inH)))
              (then
                (memory.fill (local.get $at) (i32.const 0) (local.get $runBytes))
                (local.set $at (i32.add (local.get $at) (local.get $runBytes))))
              (else
                ;; line: byte offset of x[b][ih][0][0]
                (local.set $line (i32.add (local.get $x)
                  (i32.mul (i32.add (i32.mul (local.get $b) (local.get $inH)) (local.get $ih)) (local.get $rowStride))))
                (if (i32.and (i32.eq (local.get $dW) (i32.const 1))
                      (i32.and (i32.ge_s (local.get $iw0) (i32.const 0))
                               (i32.le_s (i32.add (local.get $iw0) (local.get $fW)) (local.get $inW))))
                  (then
                    (call $copy (local.get $at) (i32.add (local.get $line) (i32.mul (local.get $iw0) (local.get $tapBytes))) (local.get $runBytes))
                    (local.set $at (i32.add (local.get $at) (local.get $runBytes))))
                  (else
                    (local.set $fw (i32.const 0))
                    (block $fwDone (loop $fwLoop
                      (br_if $fwDone (i32.ge_s (local.get $fw) (local.get $fW)))
                      (local.set $iw (i32.add (local.get $iw0) (i32.mul (local.get $fw) (local.get $dW))))
                      (if (i32.or (i32.lt_s (local.get $iw) (i32.const 0)) (i32.ge_s (local.get $iw) (local.get $inW)))
                        (then (memory.fill (local.get $at) (i32.const 0) (local.get $tapBytes)))
                        (else (call $copy (local.get $at) (i32.add (local.get $line) (i32.mul (local.get $iw) (local.get $tapBytes))) (local.get $tapBytes))))
                      (local.set $at (i32.add (local.get $at) (local.get $tapBytes)))
                      (local.set $fw (i32.add (local.get $fw) (i32.const 1)))
                      (br $fwLoop)))))))
            (local.set $fh (i32.add (local.get $fh) (i32.const 1)))
            (br $fhLoop)))
          (local.set $ow (i32.add (local.get $ow) (i32.const 1)))
          (br $owLoop)))
        (local.set $oh (i32.add (local.get $oh) (i32.const 1)))
        (br $ohLoop)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (br $bLoop))))
)
