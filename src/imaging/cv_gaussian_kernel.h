// OpenCV's bit-exact Gaussian kernels (imgproc smooth.dispatch.cpp, OpenCV 4.10): the double
// kernel cv2.getGaussianKernel returns, and the 8-fraction-bit fixed-point kernel GaussianBlur
// uses for 8-bit images. Exposed for cv2_gaussian_blur and its tests.
#pragma once

#include <cstdint>
#include <vector>

namespace easel::imaging {

// getGaussianKernelBitExact: n taps for sigma (sigma <= 0: OpenCV's default for n), computed in
// IEEE double operations exactly as OpenCV's softdouble does, with OpenCV's own exp.
std::vector<double> cv_gaussian_kernel(int n, double sigma);

// getGaussianKernelFixedPoint_ED with 8 fraction bits (ufixedpoint16): the taps rounded from the
// outside in with error diffusion, the centre tap taking what makes the sum exactly 256. n odd.
std::vector<uint16_t> cv_gaussian_kernel_fixed8(int n, double sigma);

// OpenCV's softdouble exp (core/src/softfloat.cpp f64_exp): a 64-entry table of 2^(i/64) and a
// degree-5 polynomial, not the C library's exp.
double cv_softdouble_exp(double x);

}  // namespace easel::imaging
