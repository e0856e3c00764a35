# Builds BPF CO-RE objects and turns each into a libbpf skeleton header.
# The skeleton embeds the object's bytes, so the library carries its BPF code
# and no .o file is installed or shipped.

set(RETINA_BPF_GEN_DIR ${CMAKE_BINARY_DIR}/bpf-gen)
file(MAKE_DIRECTORY ${RETINA_BPF_GEN_DIR})

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(RETINA_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(RETINA_BPF_ARCH arm64)
else()
  set(RETINA_BPF_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()

# vmlinux.h, in this order: RETINA_VMLINUX_H if given; the copy pinned in
# the repo for the target architecture (bpf/vmlinux/<arch>/vmlinux.h, a
# `bpftool btf dump ... format c` of a recent kernel), so builds do not
# depend on the build host's kernel; else one generated from the running
# kernel's BTF. CO-RE relocations make the objects portable across kernels.
set(RETINA_VMLINUX ${RETINA_BPF_GEN_DIR}/vmlinux.h)
set(RETINA_PINNED_VMLINUX_H ${CMAKE_SOURCE_DIR}/bpf/vmlinux/${RETINA_BPF_ARCH}/vmlinux.h)
if(NOT RETINA_VMLINUX_H AND EXISTS ${RETINA_PINNED_VMLINUX_H})
  set(RETINA_VMLINUX_H ${RETINA_PINNED_VMLINUX_H})
endif()
if(RETINA_VMLINUX_H)
  message(STATUS "BPF programs built against ${RETINA_VMLINUX_H}")
  add_custom_command(OUTPUT ${RETINA_VMLINUX}
    COMMAND ${CMAKE_COMMAND} -E copy ${RETINA_VMLINUX_H} ${RETINA_VMLINUX}
    DEPENDS ${RETINA_VMLINUX_H} VERBATIM)
elseif(EXISTS /sys/kernel/btf/vmlinux)
  add_custom_command(OUTPUT ${RETINA_VMLINUX}
    COMMAND ${BPFTOOL} btf dump file /sys/kernel/btf/vmlinux format c > ${RETINA_VMLINUX}
    COMMENT "Generating vmlinux.h from kernel BTF" VERBATIM)
else()
  message(FATAL_ERROR "No pinned bpf/vmlinux/${RETINA_BPF_ARCH}/vmlinux.h and no /sys/kernel/btf/vmlinux: "
                      "pass -DRETINA_VMLINUX_H=<vmlinux.h>")
endif()
add_custom_target(retina_vmlinux_h DEPENDS ${RETINA_VMLINUX})

# -mcpu=v3 (kernel 5.1+): 32-bit atomics (xchg, fetch-or) for conntrack
# counters; every plugin already needs 5.8+ for ring buffers.
# retina_bpf_skeleton(<name> <source.bpf.c> [DEPENDS headers...])
# Produces ${RETINA_BPF_GEN_DIR}/<name>.skel.h and appends it to the global
# list RETINA_BPF_SKELETONS.
function(retina_bpf_skeleton name src)
  cmake_parse_arguments(ARG "" "" "DEPENDS" ${ARGN})
  set(tmp_obj ${RETINA_BPF_GEN_DIR}/${name}.tmp.o)
  set(obj ${RETINA_BPF_GEN_DIR}/${name}.bpf.o)
  set(skel ${RETINA_BPF_GEN_DIR}/${name}.skel.h)
  add_custom_command(OUTPUT ${skel}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_${RETINA_BPF_ARCH}
            -Wall -Wno-unused-function -Wno-compare-distinct-pointer-types
            -I${RETINA_BPF_GEN_DIR} -I${CMAKE_SOURCE_DIR}/bpf -I${CMAKE_SOURCE_DIR}/include
            -MD -MT ${skel} -MF ${RETINA_BPF_GEN_DIR}/${name}.d -c ${src} -o ${tmp_obj}
    COMMAND ${BPFTOOL} gen object ${obj} ${tmp_obj}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
    DEPENDS ${src} ${RETINA_VMLINUX} ${ARG_DEPENDS}
    DEPFILE ${RETINA_BPF_GEN_DIR}/${name}.d
    COMMENT "BPF skeleton ${name}" VERBATIM)
  set_property(GLOBAL APPEND PROPERTY RETINA_BPF_SKELETONS ${skel})
endfunction()
