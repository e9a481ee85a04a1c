// Library enums used directly as command-line values.
import ArgumentParser
import GPT2

extension ShardFormat: ExpressibleByArgument {}
extension InputFormat: ExpressibleByArgument {}
extension ComputeDevice: ExpressibleByArgument {}
extension CUDAPrecision: ExpressibleByArgument {}
