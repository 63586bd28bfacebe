internal import CNGHTTP2

func placeholderVersion() -> Int32 {
    nghttp2_version(0).pointee.version_num
}
