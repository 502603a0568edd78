;; The engine's floor: a component with no CPython that exports the wruntime handler and
;; copies stdin to stdout through WASI (4 KiB per write: blocking-write-and-flush's limit).
;; bench/engine.py turns it into a .wasm with wasmtime.wat2wasm.
(component
  (type $error-inst (instance (export "error" (type (sub resource)))))
  (import "wasi:io/error@0.2.0" (instance $io-error (type $error-inst)))
  (alias export $io-error "error" (type $error))
  (type $streams-inst
    (instance
      (alias outer 1 $error (type $err))
      (export "error" (type $err2 (eq $err)))
      (export "input-stream" (type $in (sub resource)))
      (export "output-stream" (type $out (sub resource)))
      (type $own-err (own $err2))
      (type $se-def (variant (case "last-operation-failed" $own-err) (case "closed")))
      (export "stream-error" (type $se (eq $se-def)))
      (type $bytes (list u8))
      (type $bin (borrow $in))
      (type $read-res (result $bytes (error $se)))
      (type $read-fn (func (param "self" $bin) (param "len" u64) (result $read-res)))
      (export "[method]input-stream.blocking-read" (func (type $read-fn)))
      (type $bout (borrow $out))
      (type $write-res (result (error $se)))
      (type $write-fn (func (param "self" $bout) (param "contents" $bytes) (result $write-res)))
      (export "[method]output-stream.blocking-write-and-flush" (func (type $write-fn)))))
  (import "wasi:io/streams@0.2.0" (instance $streams (type $streams-inst)))
  (alias export $streams "input-stream" (type $input-stream))
  (alias export $streams "output-stream" (type $output-stream))
  (type $stdin-inst
    (instance
      (alias outer 1 $input-stream (type $is))
      (export "input-stream" (type $is2 (eq $is)))
      (type $own-is (own $is2))
      (type $f (func (result $own-is)))
      (export "get-stdin" (func (type $f)))))
  (import "wasi:cli/stdin@0.2.0" (instance $stdin (type $stdin-inst)))
  (type $stdout-inst
    (instance
      (alias outer 1 $output-stream (type $os))
      (export "output-stream" (type $os2 (eq $os)))
      (type $own-os (own $os2))
      (type $f (func (result $own-os)))
      (export "get-stdout" (func (type $f)))))
  (import "wasi:cli/stdout@0.2.0" (instance $stdout (type $stdout-inst)))

  ;; Memory and a bump allocator first: the lowered imports need them.
  (core module $Mem
    (memory (export "memory") 2)
    (global $bump (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p
        (i32.and
          (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get 2))))
      (global.set $bump (i32.add (local.get $p) (local.get 3)))
      (block $ok
        (br_if $ok (i32.le_u (global.get $bump) (i32.mul (memory.size) (i32.const 65536))))
        (drop
          (memory.grow
            (i32.add
              (i32.shr_u
                (i32.sub (global.get $bump) (i32.mul (memory.size) (i32.const 65536)))
                (i32.const 16))
              (i32.const 1)))))
      (local.get $p)))
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias core export $mem "realloc" (core func $realloc))

  (alias export $stdin "get-stdin" (func $get-stdin))
  (alias export $stdout "get-stdout" (func $get-stdout))
  (alias export $streams "[method]input-stream.blocking-read" (func $read))
  (alias export $streams "[method]output-stream.blocking-write-and-flush" (func $write))
  (core func $get-stdin-c (canon lower (func $get-stdin)))
  (core func $get-stdout-c (canon lower (func $get-stdout)))
  (core func $read-c (canon lower (func $read) (memory $memory) (realloc $realloc)))
  (core func $write-c (canon lower (func $write) (memory $memory)))

  (core module $Main
    (import "env" "memory" (memory 1))
    (import "env" "get-stdin" (func $get-stdin (result i32)))
    (import "env" "get-stdout" (func $get-stdout (result i32)))
    (import "env" "read" (func $read (param i32 i64 i32)))
    (import "env" "write" (func $write (param i32 i32 i32 i32)))
    ;; handle(method, path, headers) -> pointer to the response record at 64
    (func (export "handle") (param i32 i32 i32 i32 i32 i32) (result i32)
      (local $in i32)
      (local $out i32)
      (local.set $in (call $get-stdin))
      (local.set $out (call $get-stdout))
      (block $done
        (loop $next
          ;; result<list<u8>, stream-error> at 16: tag at 16, list at 20/24
          (call $read (local.get $in) (i64.const 4096) (i32.const 16))
          (br_if $done (i32.load8_u (i32.const 16)))
          (br_if $done (i32.eqz (i32.load (i32.const 24))))
          (call $write (local.get $out) (i32.load (i32.const 20)) (i32.load (i32.const 24))
            (i32.const 32))
          (br_if $done (i32.load8_u (i32.const 32)))
          (br $next)))
      (i32.store16 (i32.const 64) (i32.const 200))
      (i32.store (i32.const 68) (i32.const 0))
      (i32.store (i32.const 72) (i32.const 0))
      (i32.const 64)))
  (core instance $main
    (instantiate $Main
      (with "env"
        (instance
          (export "memory" (memory $memory))
          (export "get-stdin" (func $get-stdin-c))
          (export "get-stdout" (func $get-stdout-c))
          (export "read" (func $read-c))
          (export "write" (func $write-c))))))

  (type $headers (list (tuple string string)))
  (type $request (record (field "method" string) (field "path" string) (field "headers" $headers)))
  (type $response (record (field "status" u16) (field "headers" $headers)))
  (type $handle-fn (func (param "req" $request) (result $response)))
  (func $handle (type $handle-fn)
    (canon lift (core func $main "handle") (memory $memory) (realloc $realloc)))
  (instance $handler
    (export "request" (type $request))
    (export "response" (type $response))
    (export "handle" (func $handle)))
  (export "wruntime:runtime/handler@0.1.0" (instance $handler))
)
