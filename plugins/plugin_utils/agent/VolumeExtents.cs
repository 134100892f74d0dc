// The C# helper of the shadowsnap.ec2 agent (read_ops.ps1, Get-VolumeExtentsType): IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS,
// the disks under a volume, the only way to see the members of a volume on dynamic disks. The transport carries it in
// the agent script as the here-string $VolumeExtentsSource; Add-Type compiles it only when dynamic disks exist.
using System;
using System.ComponentModel;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace ShadowsnapAgent
{
    public static class VolumeExtents
    {
        [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode)]
        private static extern SafeFileHandle CreateFile(string name, uint access, uint share, IntPtr security,
            uint disposition, uint flags, IntPtr template);

        [DllImport("kernel32.dll", SetLastError = true)]
        private static extern bool DeviceIoControl(SafeFileHandle device, uint code, IntPtr input, uint inputSize,
            IntPtr output, uint outputSize, out uint returned, IntPtr overlapped);

        public static int[] DiskNumbers(string volume)
        {
            using (SafeFileHandle handle = CreateFile(volume, 0, 3, IntPtr.Zero, 3, 0, IntPtr.Zero))
            {
                if (handle.IsInvalid)
                {
                    throw new Win32Exception(Marshal.GetLastWin32Error());
                }
                int size = 8 + 24 * 128;
                IntPtr buffer = Marshal.AllocHGlobal(size);
                try
                {
                    uint returned;
                    if (!DeviceIoControl(handle, 0x00560000, IntPtr.Zero, 0, buffer, (uint)size, out returned, IntPtr.Zero))
                    {
                        throw new Win32Exception(Marshal.GetLastWin32Error());
                    }
                    int count = Marshal.ReadInt32(buffer);
                    int[] disks = new int[count];
                    for (int index = 0; index < count; index++)
                    {
                        disks[index] = Marshal.ReadInt32(buffer, 8 + 24 * index);
                    }
                    return disks;
                }
                finally
                {
                    Marshal.FreeHGlobal(buffer);
                }
            }
        }
    }
}
