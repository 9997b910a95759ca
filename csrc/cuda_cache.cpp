// libtorch keeps freed CUDA memory in its caching allocator; the C API that tch wraps has
// no way to hand it back. A monitor sharing a GPU with a training job must, so this is
// `torch.cuda.empty_cache()` as one C function. It goes through c10's device-allocator
// registry, so it needs no CUDA headers, and fails cleanly without a CUDA allocator.
#include <c10/core/CachingDeviceAllocator.h>

extern "C" int camwatch_cuda_empty_cache() {
  try {
    c10::getDeviceAllocator(c10::DeviceType::CUDA)->emptyCache();
    return 0;
  } catch (...) {
    return -1;
  }
}
