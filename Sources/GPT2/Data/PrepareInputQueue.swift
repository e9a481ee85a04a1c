// Inputs of `DatasetPreparer` that may arrive while preparation runs: a downloader hands out each
// file once it is complete and deletes it once it has been read (`gpt prepare hf://... --stream`).

/// Inputs that may arrive while preparation runs (downloads). `next()` blocks until the next local
/// file is ready and returns nil at the end; `done(_:)` is called once a file has been fully read,
/// so a streaming caller can delete it. Files are consumed in order.
public protocol PrepareInputQueue: AnyObject, Sendable {
    func next() throws -> String?
    func done(_ path: String)
}

/// A fixed list of inputs (what `prepare(inputs:)` reads), handed out in order.
final class FixedInputQueue: PrepareInputQueue, @unchecked Sendable {
    private var paths: ArraySlice<String>

    init(_ paths: [String]) { self.paths = paths[...] }

    func next() throws -> String? { paths.popFirst() }
    func done(_ path: String) {}
}
