# CPU (NumPy) model of the tensor-core attention kernels' tiling (Kernels/CUDAAttentionTC.swift), no GPU:
# forward and dQ with 128-query blocks of 8 warps, 64-key tiles, per-warp skip/mask (rel = q0+16w-k0, lim = rel/16),
# D written by dQ (each row once), checked against fp64 attention for ragged T; and the lane-level ldmatrix A fragment
# mapping behind the dQ kernel's D = rowsum(dO * O). Usage: python3 bench/attention_tc_model.py
import numpy as np
HS=64; R=64; QR=128
def ref(q,k,v,do):
    T=q.shape[0]; s=q@k.T/8.0; s=np.where(np.tril(np.ones((T,T),bool)),s,-np.inf)
    m=s.max(1,keepdims=True); p=np.exp(s-m); l=p.sum(1,keepdims=True); P=p/l
    o=P@v; lse=(m+np.log(l))[:,0]
    D=(do*o).sum(1); dP=do@v.T; dS=P*(dP-D[:,None])/8.0; dq=dS@k
    return o,lse,dq,D
def tile(x,r0,T):
    t=np.zeros((R,HS)); n=max(0,min(R,T-r0)); t[:n]=x[r0:r0+n]; return t
def forward(q,k,v):
    T=q.shape[0]; out=np.full((T,HS),np.nan); lse=np.full(T,np.nan); sl2=np.log2(np.e)/8
    nblk=(T+QR-1)//QR
    for qb in range(nblk):
        q0=qb*QR; nk=(min(q0+QR,T)+R-1)//R
        Qt=[tile(q,q0,T),tile(q,q0+R,T)]
        for w in range(8):
            wr=16*w; Q=Qt[0 if w<4 else 1][wr&63:(wr&63)+16]
            o=np.zeros((16,HS)); m=np.full(16,-np.inf); l=np.zeros(16)
            for kt in range(nk):
                K=tile(k,kt*R,T); V=tile(v,kt*R,T)
                rel=q0+wr-kt*R
                if rel<0: continue
                diag=rel<R; lim=rel>>4
                s=np.zeros((16,64))
                for c in range(4):
                    if c>lim: continue
                    s[:,16*c:16*c+16]=Q@K[16*c:16*c+16].T
                x=s*sl2
                if diag:
                    j=np.arange(64)[None,:]; i=np.arange(16)[:,None]
                    x=np.where(j>rel+i,-np.inf,x)
                mn=np.maximum(m,x.max(1)); corr=np.exp2(m-mn); m=mn; l*=corr
                p=np.exp2(x-m[:,None]); l+=p.sum(1); o*=corr[:,None]
                for kc in range(4):
                    if kc>lim: continue
                    o+=p[:,16*kc:16*kc+16]@V[16*kc:16*kc+16]
            for i in range(16):
                row=q0+wr+i
                if row<T: out[row]=o[i]/l[i]; lse[row]=m[i]*np.log(2)+np.log(l[i])
    return out,lse
def dq_kernel(q,k,v,o,do,lse):
    T=q.shape[0]; dq=np.full((T,HS),np.nan); Dbuf=np.full(T,np.nan); sl2=np.log2(np.e)/8
    writes=np.zeros(T,int)
    for qb in range((T+QR-1)//QR):
        q0=qb*QR; nk=(min(q0+QR,T)+R-1)//R
        Qt=[tile(q,q0,T),tile(q,q0+R,T)]; Dt=[tile(do,q0,T),tile(do,q0+R,T)]
        for w in range(8):
            wr=16*w; Q=Qt[0 if w<4 else 1][wr&63:(wr&63)+16]; dO=Dt[0 if w<4 else 1][wr&63:(wr&63)+16]
            rows=q0+wr+np.arange(16); valid=rows<T
            Li=np.where(valid,lse[np.minimum(rows,T-1)]*np.log2(np.e),0)
            O=np.where(valid[:,None],o[np.minimum(rows,T-1)],0)
            Di=(dO*O).sum(1)
            for i in range(16):
                if valid[i]: Dbuf[rows[i]]=Di[i]; writes[rows[i]]+=1
            acc=np.zeros((16,HS))
            for kt in range(nk):
                K=tile(k,kt*R,T); V=tile(v,kt*R,T)
                rel=q0+wr-kt*R
                if rel<0: continue
                diag=rel<R; lim=rel>>4
                for kc in range(4):
                    if kc>lim: continue
                    Kc=K[16*kc:16*kc+16]; Vc=V[16*kc:16*kc+16]
                    s=Q@Kc.T; dp=dO@Vc.T
                    p=np.exp2(s*sl2-Li[:,None])
                    if diag:
                        j=16*kc+np.arange(16)[None,:]; i=np.arange(16)[:,None]
                        p=np.where(j>rel+i,0,p)
                    ds=p*(dp-Di[:,None])/8.0
                    acc+=ds@Kc
            for i in range(16):
                if valid[i]: dq[rows[i]]=acc[i]
    assert (writes==1).all()
    return dq,Dbuf
rng=np.random.default_rng(0)
for T in [1,2,15,16,17,63,64,65,96,127,128,129,191,192,200,255,256,257,320,1024]:
    q,k,v,do=[rng.standard_normal((T,HS)) for _ in range(4)]
    o,lse,dq,D=ref(q,k,v,do)
    fo,fl=forward(q,k,v)
    kdq,kD=dq_kernel(q,k,v,o,do,lse)
    e=[np.abs(fo-o).max(),np.abs(fl-lse).max(),np.abs(kdq-dq).max(),np.abs(kD-D).max()]
    assert all(np.isfinite(e)) and max(e)<1e-9,(T,e)
print("tile model OK")
# lane-level: ldmatrix.x4 A fragment (offA) of a 16x64 block, and the D dot product of the dq kernel
X=rng.standard_normal((16,64)); O=rng.standard_normal((16,64))
def ldsm4_offA(M,kk):
    addr=[(L&15, kk*16+8*(L>>4)) for L in range(32)]   # (row, col) of each lane's row address
    r=np.zeros((32,4,2))
    for L in range(32):
        for i in range(4):
            rr,cc=addr[8*i+L//4]; r[L,i]=M[rr,cc+2*(L%4):cc+2*(L%4)+2]
    return r
D=np.zeros((32,2))
for L in range(32):
    g,t=L//4,L%4
    for r in range(2):
        d=0
        for kk in range(4):
            da=ldsm4_offA(X,kk)[L]
            for hf in range(2):
                ov=O[g+8*r,16*kk+8*hf+2*t:16*kk+8*hf+2*t+2]
                d+=(da[r+2*hf]*ov).sum()
        D[L,r]=d
Dq=D.reshape(8,4,2).sum(1)  # quadSum
ref_=(X*O).sum(1)
assert np.allclose(Dq[:,0],ref_[:8]) and np.allclose(Dq[:,1],ref_[8:])
print("lane model OK")
