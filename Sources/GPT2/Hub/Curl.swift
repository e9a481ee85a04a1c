// HTTP(S) through libcurl, loaded with dlopen at first use so `swift build` needs only the
// toolchain and a static `gpt` runs on machines without libcurl until it downloads something.
// Redirects are not followed here: the hub client follows them itself, so the Authorization header
// never reaches another host (the CDN). One `CurlSession` (an easy handle, which keeps its
// connections alive between requests) per thread. Option numbers are curl.h's (stable ABI).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import GPT2Kernels

/// libcurl's entry points.
final class CurlLibrary: @unchecked Sendable {
    typealias EasyInit = @convention(c) () -> UnsafeMutableRawPointer?
    typealias EasyHandleCall = @convention(c) (UnsafeMutableRawPointer?) -> Int32
    typealias EasyCleanup = @convention(c) (UnsafeMutableRawPointer?) -> Void
    typealias Strerror = @convention(c) (Int32) -> UnsafePointer<CChar>?
    typealias SlistAppend = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> UnsafeMutableRawPointer?
    typealias SlistFree = @convention(c) (UnsafeMutableRawPointer?) -> Void
    typealias GlobalInit = @convention(c) (Int) -> Int32
    typealias Version = @convention(c) () -> UnsafePointer<CChar>?

    let easyInit: EasyInit
    let easyCleanup: EasyCleanup
    let easyPerform: EasyHandleCall
    let easyReset: EasyCleanup
    let strerror: Strerror
    let slistAppend: SlistAppend
    let slistFree: SlistFree
    let setopt: UnsafeMutableRawPointer
    let getinfo: UnsafeMutableRawPointer
    /// e.g. "libcurl/7.88.1 OpenSSL/3.0.15 zlib/1.2.13"
    let version: String

    private init(handle: UnsafeMutableRawPointer) throws {
        func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
            guard let s = dlsym(handle, name) else { throw HubError.httpLibraryMissing(detail: "symbol \(name) missing") }
            return s
        }
        easyInit = unsafeBitCast(try symbol("curl_easy_init"), to: EasyInit.self)
        easyCleanup = unsafeBitCast(try symbol("curl_easy_cleanup"), to: EasyCleanup.self)
        easyPerform = unsafeBitCast(try symbol("curl_easy_perform"), to: EasyHandleCall.self)
        easyReset = unsafeBitCast(try symbol("curl_easy_reset"), to: EasyCleanup.self)
        strerror = unsafeBitCast(try symbol("curl_easy_strerror"), to: Strerror.self)
        slistAppend = unsafeBitCast(try symbol("curl_slist_append"), to: SlistAppend.self)
        slistFree = unsafeBitCast(try symbol("curl_slist_free_all"), to: SlistFree.self)
        setopt = try symbol("curl_easy_setopt")
        getinfo = try symbol("curl_easy_getinfo")
        let globalInit = unsafeBitCast(try symbol("curl_global_init"), to: GlobalInit.self)
        let versionCall = unsafeBitCast(try symbol("curl_version"), to: Version.self)
        version = versionCall().map { String(cString: $0) } ?? "libcurl"
        // CURL_GLOBAL_DEFAULT (SSL | WIN32); must run before any other thread uses curl.
        let rc = globalInit(3)
        if rc != 0 { throw HubError.httpLibraryMissing(detail: "curl_global_init failed (\(rc))") }
    }

    /// Sonames tried in order: Debian's libcurl4 (OpenSSL), then libcurl3-gnutls (installed with git).
    static var candidates: [String] {
        if let path = Settings.current.libcurl { return [path] }
        #if os(macOS)
        return ["/usr/lib/libcurl.4.dylib", "libcurl.4.dylib", "libcurl.dylib"]
        #else
        return ["libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so"]
        #endif
    }

    private static let loaded: Result<CurlLibrary, HubError> = {
        var errors: [String] = []
        for name in candidates {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) else {
                errors.append(dlerror().map { String(cString: $0) } ?? name)
                continue
            }
            do { return .success(try CurlLibrary(handle: handle)) } catch let e as HubError {
                return .failure(e)
            } catch {
                return .failure(.httpLibraryMissing(detail: "\(error)"))
            }
        }
        return .failure(.httpLibraryMissing(detail: errors.first ?? "not found"))
    }()

    /// The process-wide library (loaded and initialised once).
    static func shared() throws(HubError) -> CurlLibrary { try loaded.get() }
}

// MARK: - Requests

/// One GET request.
struct HTTPRequest {
    var url: String
    /// "Name: value" lines.
    var headers: [String] = []
    /// Ask for the bytes from this offset on (`Range: bytes=N-`); 0 for the whole body.
    var rangeStart: Int64 = 0
    /// Accept gzip/deflate/br (curl decodes them); off for files, whose size must be known.
    var acceptCompressed = false
    /// Seconds to establish the connection.
    var connectTimeout = 10
    /// Abort when fewer than 1 byte arrives during this many seconds.
    var stallTimeout = 10
    /// Certificate authorities to trust instead of libcurl's default bundle.
    var caBundle: String?
}

/// Status and headers of a response (names lowercased; a repeated header keeps its last value).
struct HTTPResponseHead: Sendable {
    var status = 0
    var headers: [String: String] = [:]

    func header(_ name: String) -> String? { headers[name.lowercased()] }
    var isRedirect: Bool { [301, 302, 303, 307, 308].contains(status) && header("location") != nil }
}

/// A request that did not complete at the transport level (no connection, timeout, cut transfer).
struct HTTPTransportError: Error, CustomStringConvertible {
    /// CURLcode.
    var code: Int32
    var message: String
    var url: String

    /// Worth retrying: connection refused/reset, timeouts, transfers cut short.
    var isTransient: Bool {
        // 7 COULDNT_CONNECT, 16 HTTP2, 18 PARTIAL_FILE, 28 OPERATION_TIMEDOUT, 35 SSL_CONNECT_ERROR,
        // 52 GOT_NOTHING, 55 SEND_ERROR, 56 RECV_ERROR, 92 HTTP2_STREAM, 95 HTTP3
        [7, 16, 18, 28, 35, 52, 55, 56, 92, 95].contains(code)
    }
    /// 6 COULDNT_RESOLVE_HOST, 7 COULDNT_CONNECT: the machine is probably offline.
    var isUnreachable: Bool { code == 6 || code == 7 || code == 5 }
    var description: String { "\(message) (\(url))" }
}

/// Receives the body of a 2xx response; return false to abort the transfer.
typealias HTTPBodySink = (HTTPResponseHead, UnsafeRawBufferPointer) -> Bool

/// State shared with curl's C callbacks during one transfer.
private final class Transfer {
    var head = HTTPResponseHead()
    var collected: [UInt8] = []
    let collectLimit: Int
    let sink: HTTPBodySink?
    var abortedBySink = false

    init(sink: HTTPBodySink?, collectLimit: Int) {
        self.sink = sink
        self.collectLimit = collectLimit
    }

    func headerLine(_ line: String) {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("HTTP/") {
            // A new response (after 100 Continue or a proxy's CONNECT): start over.
            head = HTTPResponseHead()
            let parts = trimmed.split(separator: " ")
            if parts.count >= 2, let code = Int(parts[1]) { head.status = code }
        } else if let colon = trimmed.firstIndex(of: ":") {
            let name = trimmed[..<colon].lowercased()
            head.headers[name] = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
    }

    func body(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if let sink, (200..<300).contains(head.status) {
            if !sink(head, bytes) { abortedBySink = true; return false }
            return true
        }
        // Error pages, redirect bodies and API answers are kept (bounded) for messages and JSON.
        if collected.count + bytes.count > collectLimit { abortedBySink = true; return false }
        collected.append(contentsOf: bytes)
        return true
    }
}

private let writeCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { ptr, size, count, context in
    guard let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let n = size * count
    guard n > 0, let ptr else { return n }
    return transfer.body(UnsafeRawBufferPointer(start: ptr, count: n)) ? n : 0
}

private let headerCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = { ptr, size, count, context in
    guard let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let n = size * count
    if let ptr, n > 0 {
        transfer.headerLine(String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self))
    }
    return n
}

/// One curl easy handle; use from one thread at a time.
final class CurlSession {
    private let curl: CurlLibrary
    private let handle: UnsafeMutableRawPointer
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: 256)   // CURL_ERROR_SIZE

    init() throws(HubError) {
        curl = try CurlLibrary.shared()
        guard let h = curl.easyInit() else { throw HubError.httpLibraryMissing(detail: "curl_easy_init failed") }
        handle = h
    }

    deinit {
        curl.easyCleanup(handle)
        errorBuffer.deallocate()
    }

    // curl.h option numbers: LONG 0+, OBJECTPOINT 10000+, FUNCTIONPOINT 20000+, OFF_T 30000+
    private enum Option: Int32 {
        case writeData = 10001, url = 10002, errorBuffer = 10010, userAgent = 10018, httpHeader = 10023
        case headerData = 10029, caInfo = 10065, acceptEncoding = 10102
        case writeFunction = 20011, headerFunction = 20079
        case lowSpeedLimit = 19, lowSpeedTime = 20, noProgress = 43, followLocation = 52
        case connectTimeout = 78, noSignal = 99, bufferSize = 98, tcpKeepAlive = 213
        case resumeFromLarge = 30116
    }

    private func set(_ option: Option, _ value: Int) {
        _ = gpt2k_curl_setopt_long(curl.setopt, handle, option.rawValue, value)
    }
    private func set(_ option: Option, pointer: UnsafeRawPointer?) {
        _ = gpt2k_curl_setopt_pointer(curl.setopt, handle, option.rawValue, pointer)
    }

    /// Performs `request`. 2xx bodies go to `sink` when given; other bodies (and 2xx bodies without
    /// a sink) are collected, up to `collectLimit` bytes, into the returned bytes.
    /// - Throws: `HTTPTransportError` when no complete response arrived (`code` 23 when the sink
    ///   aborted; the sink's own reason is the caller's to keep).
    func perform(_ request: HTTPRequest, collectLimit: Int = 64 << 20,
                 sink: HTTPBodySink? = nil) throws(HTTPTransportError) -> (HTTPResponseHead, [UInt8]) {
        curl.easyReset(handle)
        let transfer = Transfer(sink: sink, collectLimit: collectLimit)
        let context = Unmanaged.passRetained(transfer)
        defer { context.release() }

        var list: UnsafeMutableRawPointer?
        for h in request.headers { list = curl.slistAppend(list, h) }
        if request.rangeStart > 0 { list = curl.slistAppend(list, "Range: bytes=\(request.rangeStart)-") }
        defer { curl.slistFree(list) }

        errorBuffer[0] = 0
        request.url.withCString { set(.url, pointer: $0) }   // curl copies strings it is given
        "gpt2-swift/0.1 (huggingface-hub-compatible)".withCString { set(.userAgent, pointer: $0) }
        if request.acceptCompressed { "".withCString { set(.acceptEncoding, pointer: $0) } }
        if let ca = request.caBundle { ca.withCString { set(.caInfo, pointer: $0) } }
        set(.httpHeader, pointer: list)
        set(.errorBuffer, pointer: errorBuffer)
        set(.writeFunction, pointer: unsafeBitCast(writeCallback, to: UnsafeRawPointer.self))
        set(.writeData, pointer: context.toOpaque())
        set(.headerFunction, pointer: unsafeBitCast(headerCallback, to: UnsafeRawPointer.self))
        set(.headerData, pointer: context.toOpaque())
        set(.followLocation, 0)
        set(.noSignal, 1)            // no SIGALRM for DNS timeouts: we run on several threads
        set(.noProgress, 1)
        set(.tcpKeepAlive, 1)
        set(.bufferSize, 256 << 10)
        set(.connectTimeout, request.connectTimeout)
        set(.lowSpeedLimit, 1)
        set(.lowSpeedTime, request.stallTimeout)

        let rc = curl.easyPerform(handle)
        if rc != 0 {
            var message = String(cString: errorBuffer)
            if message.isEmpty { message = curl.strerror(rc).map { String(cString: $0) } ?? "curl error \(rc)" }
            if transfer.abortedBySink { message = "transfer aborted" }
            throw HTTPTransportError(code: rc, message: message, url: redactedURL(request.url))
        }
        return (transfer.head, transfer.collected)
    }
}

/// The URL without its query (signed CDN URLs carry credentials there).
func redactedURL(_ url: String) -> String {
    guard let q = url.firstIndex(of: "?") else { return url }
    return String(url[..<q]) + "?…"
}
