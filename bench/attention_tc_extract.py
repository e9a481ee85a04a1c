# Writes attention_tc.cu and attention.cu (prelude + unit, as NVRTC sees them) from the Swift sources
# into DIR, for bench/attention_tc_check.py. Usage: attention_tc_extract.py REPO_ROOT DIR
import re, sys
def literal(text, start_pat):
    i = text.index(start_pat)
    j = text.index('#"""', i) + 4
    j = text.index('\n', j) + 1
    k = text.index('"""#', j)
    body = text[j:k]
    # indentation of the closing delimiter
    line_start = text.rfind('\n', 0, k) + 1
    indent = text[line_start:k]
    lines = body.split('\n')[:-1]
    return '\n'.join(l[len(indent):] if l.startswith(indent) else l.lstrip() for l in lines) + '\n'
root = sys.argv[1]
pre = literal(open(root + '/Sources/GPT2/CUDA/Kernels/CUDAKernelSource.swift').read(), 'static let prelude')
tc = literal(open(root + '/Sources/GPT2/CUDA/Kernels/CUDAAttentionTC.swift').read(), 'static let attentionTCKernels')
simt = literal(open(root + '/Sources/GPT2/CUDA/Kernels/CUDAAttention.swift').read(), 'static let attentionKernels')
out = sys.argv[2]
import os; os.makedirs(out, exist_ok=True)
open(out + '/attention_tc.cu', 'w').write(pre + '\n' + tc)
open(out + '/attention.cu', 'w').write(pre + '\n' + simt)
