import Foundation
import Reflection

/// The descriptors of every service vmssd serves, for server reflection.
public enum ServiceDescriptors {
    /// The embedded descriptor set (see DescriptorSet.swift), decoded and indexed once.
    public static let index: DescriptorIndex = {
        guard
            let data = Data(base64Encoded: descriptorSetBase64, options: .ignoreUnknownCharacters),
            let index = try? DescriptorIndex(fileDescriptorSet: [UInt8](data))
        else {
            // The set is generated and checked at build time; a bad one is a build defect.
            preconditionFailure("the embedded descriptor set does not parse")
        }
        return index
    }()
}
