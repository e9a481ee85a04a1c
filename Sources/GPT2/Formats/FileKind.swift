// What a path names, found with stat(2) before the file is opened: opening a FIFO for reading
// blocks until a writer appears, so loaders that need a regular file (models, token shards,
// tokenizer and HellaSwag files) check the kind first and say what the path really is.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The kind of file system object a path names (symbolic links followed).
public enum FileKind: Equatable, Sendable {
    case regular
    case directory
    case fifo
    case socket
    case characterDevice
    case blockDevice
    /// Nothing at the path (ENOENT, or a dangling symbolic link).
    case missing
    /// stat(2) failed for another reason (permission denied on a parent, a loop of links...).
    case inaccessible(reason: String)

    /// Looks `path` up with stat(2); never opens it.
    public init(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let code = errno
            self = code == ENOENT || code == ENOTDIR ? .missing : .inaccessible(reason: String(cString: strerror(code)))
            return
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        default: self = .inaccessible(reason: "unknown file type")
        }
    }

    /// "a directory", "a FIFO (named pipe)", ... for messages such as "'x' is a directory".
    public var description: String {
        switch self {
        case .regular: return "a regular file"
        case .directory: return "a directory"
        case .fifo: return "a FIFO (named pipe)"
        case .socket: return "a socket"
        case .characterDevice: return "a character device"
        case .blockDevice: return "a block device"
        case .missing: return "missing"
        case .inaccessible(let reason): return "inaccessible (\(reason))"
        }
    }

    /// Why `path` cannot be read as a regular file ("no such file", "it is a directory, not a
    /// file", ...), or nil when it is one.
    public static func regularFileProblem(_ path: String) -> String? {
        switch FileKind(path: path) {
        case .regular: return nil
        case .missing: return "no such file"
        case .inaccessible(let reason): return reason
        case let kind: return "it is \(kind.description), not a regular file"
        }
    }
}
