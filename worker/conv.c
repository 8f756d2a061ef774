/* im2col, its adjoint and 3x3 / 2 max pooling for the cnn
 * (worker/model_internal.h). A 5x5 "same" convolution of a batch is then one
 * sgemm: (positions x in_channels*25) times (in_channels*25 x
 * out_channels). Activations are position-major (n x h x w x c), which is
 * the layout that sgemm produces. */
#include <string.h>

#include "worker/model_internal.h"

uint32_t ps_conv_pooled(uint32_t h)
{
    return h >= PS_POOL_K ? (h - PS_POOL_K) / PS_POOL_S + 1 : 0;
}

void ps_conv_im2col(const float *in, size_t n, uint32_t c, uint32_t h, uint32_t w, size_t si,
                    size_t sc, size_t sp, float *col)
{
    const size_t rowlen = (size_t)c * PS_CONV_K * PS_CONV_K;
    for (size_t i = 0; i < n; i++) {
        const float *img = in + i * si;
        for (uint32_t y = 0; y < h; y++) {
            for (uint32_t x = 0; x < w; x++) {
                float *row = col + ((i * h + y) * w + x) * rowlen;
                for (uint32_t ch = 0; ch < c; ch++) {
                    const float *plane = img + ch * sc;
                    for (int dy = 0; dy < PS_CONV_K; dy++) {
                        int yy = (int)y + dy - PS_CONV_PAD;
                        float *out = row + ((size_t)ch * PS_CONV_K + (size_t)dy) * PS_CONV_K;
                        if (yy < 0 || yy >= (int)h) {
                            memset(out, 0, PS_CONV_K * sizeof *out);
                            continue;
                        }
                        for (int dx = 0; dx < PS_CONV_K; dx++) {
                            int xx = (int)x + dx - PS_CONV_PAD;
                            out[dx] = (xx < 0 || xx >= (int)w)
                                          ? 0.0f
                                          : plane[((size_t)yy * w + (size_t)xx) * sp];
                        }
                    }
                }
            }
        }
    }
}

void ps_conv_col2im(const float *dcol, size_t n, uint32_t c, uint32_t h, uint32_t w, float *dx)
{
    const size_t rowlen = (size_t)c * PS_CONV_K * PS_CONV_K;
    memset(dx, 0, n * h * w * c * sizeof *dx);
    for (size_t i = 0; i < n; i++) {
        float *img = dx + i * h * w * c;
        for (uint32_t y = 0; y < h; y++) {
            for (uint32_t x = 0; x < w; x++) {
                const float *row = dcol + ((i * h + y) * w + x) * rowlen;
                for (int dy = 0; dy < PS_CONV_K; dy++) {
                    int yy = (int)y + dy - PS_CONV_PAD;
                    if (yy < 0 || yy >= (int)h) {
                        continue;
                    }
                    for (int dx_ = 0; dx_ < PS_CONV_K; dx_++) {
                        int xx = (int)x + dx_ - PS_CONV_PAD;
                        if (xx < 0 || xx >= (int)w) {
                            continue;
                        }
                        float *px = img + ((size_t)yy * w + (size_t)xx) * c;
                        const float *g = row + (size_t)dy * PS_CONV_K + (size_t)dx_;
                        for (uint32_t ch = 0; ch < c; ch++) {
                            px[ch] += g[(size_t)ch * PS_CONV_K * PS_CONV_K];
                        }
                    }
                }
            }
        }
    }
}

void ps_conv_pool(const float *in, size_t n, uint32_t c, uint32_t h, uint32_t w, float *out,
                  uint32_t *arg)
{
    uint32_t ph = ps_conv_pooled(h), pw = ps_conv_pooled(w);
    for (size_t i = 0; i < n; i++) {
        size_t ibase = i * h * w * c;
        for (uint32_t py = 0; py < ph; py++) {
            for (uint32_t px = 0; px < pw; px++) {
                size_t o = ((i * ph + py) * pw + px) * c;
                for (uint32_t ch = 0; ch < c; ch++) {
                    size_t best = ibase + ((size_t)py * PS_POOL_S * w + px * PS_POOL_S) * c + ch;
                    for (int dy = 0; dy < PS_POOL_K; dy++) {
                        for (int dx = 0; dx < PS_POOL_K; dx++) {
                            size_t at =
                                ibase +
                                (((size_t)py * PS_POOL_S + dy) * w + (size_t)px * PS_POOL_S + dx) *
                                    c +
                                ch;
                            best = in[at] > in[best] ? at : best;
                        }
                    }
                    out[o + ch] = in[best];
                    arg[o + ch] = (uint32_t)best;
                }
            }
        }
    }
}

void ps_conv_pool_grad(const float *dout, const uint32_t *arg, size_t nout, size_t nin, float *din)
{
    memset(din, 0, nin * sizeof *din);
    for (size_t k = 0; k < nout; k++) {
        din[arg[k]] += dout[k];
    }
}
