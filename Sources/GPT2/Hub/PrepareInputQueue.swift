// The input-queue protocol of DatasetPreparer.prepare(queue:), declared here until the Parquet
// work that adds it to Data/DatasetPreparer.swift is merged (then this file is deleted).

/// Local files handed to a preparation run one at a time, as they become ready.
public protocol PrepareInputQueue: AnyObject, Sendable {
    /// Blocks until the next local file is ready; nil at the end.
    func next() throws -> String?
    /// The file has been fully read (a streaming caller may delete it).
    func done(_ path: String)
}
