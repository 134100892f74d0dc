# shadowsnap-agent protocol=1
#
# The shadowsnap.ec2 agent: the only code of the collection that runs on Windows. The controller sends it
# with every request (plugins/plugin_utils/agent_transport.py, docs/agent-protocol.md) and it answers with
# exactly one JSON document on standard output.
#
# It stays thin on purpose: raw properties of cmdlets and WMI/CIM classes, raw text of native tools.
# Joining, mapping, parsing and judging happen in Python on the controller, where they are tested.
#
# Rules: Windows PowerShell 5.1 compatible (no ??, no ternary, no -AsHashtable), ASCII only, every failure
# caught and answered as the error document, with the HRESULT when there is one.
param($RequestJson)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$AgentProtocol = 1
$ReadOps = @('facts', 'storage', 'writers', 'shadows')
$JsonDepth = 8
$ImdsTimeoutMs = 1000
$OutputLimit = 65536

# The session ops of the shadow engine (docs/vss-session.md): never batched.
$SessionOps = @('session_start', 'session_status', 'session_release', 'shadow_delete', 'session_cleanup', 'service_restart', 'file_read')
$ShadowsnapRoot = Join-Path $env:ProgramData 'shadowsnap'
$RunRoot = Join-Path $ShadowsnapRoot 'runs'
$TaskPath = '\shadowsnap\'
$TaskPrefix = 'shadowsnap-'
$SessionFiles = @('snapshot.dsh', 'record.cmd', 'hold.cmd', 'run.cmd')
$RunIdPattern = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'
$MaxWaitSeconds = 900
$DefaultTimeLimitSeconds = 3600
$LogLimit = 524288
$FileReadDefaultLimit = 16777216
$FileReadMaxLimit = 134217728
$ServiceTimeoutDefault = 60
$ServiceTimeoutMax = 300
$InProgressHResult = '0x80042316'
# Task Scheduler's LastTaskResult of a task that has not run yet (SCHED_S_TASK_HAS_NOT_RUN).
$TaskNeverRan = 267011

# Partition types of dynamic disks: the GPT LDM metadata and data partitions, and the MBR LDM partition type.
$LdmGptTypes = @('{5808c8aa-7e8f-42e0-85d2-e1e90434cfb3}', '{af9b60a0-1431-4f62-bc68-3311714a69ad}')
$LdmMbrType = 66

# A 32-bit PowerShell on 64-bit Windows sees the 64-bit tools through Sysnative only.
$SystemDir = Join-Path $env:SystemRoot 'System32'
$NativeDir = Join-Path $env:SystemRoot 'Sysnative'
if (Test-Path -LiteralPath $NativeDir) {
    $SystemDir = $NativeDir
}

# What the storage and shadows ops return: raw properties, by the names of the cmdlets and classes they come from.
# Calculated properties only turn a [char] drive letter into text, a WMI reference into the volume id it names and a
# DateTime into WMI (DMTF) text; their script blocks call functions defined below, at the time they run.
$DriveLetterProperty = @{ Name = 'DriveLetter'; Expression = { ConvertTo-DriveLetter $_.DriveLetter } }
$DiskProperties = @(
    'Number', 'SerialNumber', 'AdapterSerialNumber', 'FriendlyName', 'Manufacturer', 'Model', 'BusType',
    'PartitionStyle', 'OperationalStatus', 'HealthStatus', 'IsOffline', 'OfflineReason', 'IsReadOnly', 'IsBoot',
    'IsSystem', 'IsClustered', 'Size', 'Location', 'Path', 'UniqueId'
)
$DiskDriveProperties = @(
    'Index', 'DeviceID', 'Caption', 'Model', 'SerialNumber', 'InterfaceType', 'SCSIPort', 'SCSIBus', 'SCSITargetId',
    'SCSILogicalUnit', 'PNPDeviceID', 'Size'
)
$PartitionProperties = @(
    'DiskNumber', 'PartitionNumber', $DriveLetterProperty, 'AccessPaths', 'Offset', 'Size', 'Type', 'GptType',
    'MbrType', 'IsBoot', 'IsSystem', 'IsHidden', 'IsOffline', 'IsReadOnly'
)
$VolumeProperties = @(
    'UniqueId', 'Path', $DriveLetterProperty, 'FileSystem', 'FileSystemLabel', 'DriveType', 'HealthStatus', 'Size',
    'SizeRemaining'
)
$ShadowStorageProperties = @(
    @{ Name = 'Volume'; Expression = { Get-Property $_.Volume 'DeviceID' } },
    @{ Name = 'DiffVolume'; Expression = { Get-Property $_.DiffVolume 'DeviceID' } },
    'UsedSpace', 'AllocatedSpace', 'MaxSpace'
)
$PhysicalDiskProperties = @(
    'DeviceId', 'SerialNumber', 'AdapterSerialNumber', 'FriendlyName', 'Model', 'BusType', 'Size', 'UniqueId'
)
$ShadowCopyProperties = @(
    'ID', 'SetID', 'VolumeName', 'DeviceObject', @{ Name = 'InstallDate'; Expression = { ConvertTo-DmtfDate $_.InstallDate } },
    'Count', 'ClientAccessible', 'Persistent', 'NoAutoRelease', 'NoWriters', 'Differential', 'ExposedLocally',
    'ExposedRemotely', 'ExposedName', 'ExposedPath', 'HardwareAssisted', 'Imported', 'Plex', 'Transportable',
    'ProviderID', 'OriginatingMachine', 'ServiceMachine', 'State'
)

function Get-Property {
    # The value of a property or dictionary key that may be absent (Set-StrictMode forbids reading a missing one).
    param($InputObject, $Name, $Default = $null)
    if ($null -eq $InputObject) {
        return $Default
    }
    if ($InputObject -is [System.Collections.IDictionary]) {
        if ($InputObject.Contains($Name)) {
            return $InputObject[$Name]
        }
        return $Default
    }
    $property = $InputObject.PSObject.Properties[$Name]
    if ($null -eq $property) {
        return $Default
    }
    return $property.Value
}

function New-AgentException {
    # An exception that carries what the error document reports besides the message.
    param($Message, $Command = $null, $ExitCode = $null, $Output = $null, $HResult = $null)
    $exception = New-Object -TypeName System.Exception -ArgumentList $Message
    $exception.Data['shadowsnap_command'] = $Command
    $exception.Data['shadowsnap_exit_code'] = $ExitCode
    $exception.Data['shadowsnap_output'] = $Output
    $exception.Data['shadowsnap_hresult'] = $HResult
    return $exception
}

function Get-HResultFromText {
    # The failure HRESULT a native tool printed after a label (diskshadow: "- Returned HRESULT: 80042306"),
    # found by structure because the label is translated.
    param($Text)
    if (-not $Text) {
        return $null
    }
    $match = [regex]::Match([string]$Text, '(?m)[:\uFF1A]\s*(?:0x)?(8[0-9A-Fa-f]{7})\s*$')
    if ($match.Success) {
        return '0x' + $match.Groups[1].Value.ToUpperInvariant()
    }
    return $null
}

function Get-HResultFromException {
    # The first HRESULT of the exception chain that says more than "a .NET exception" (0x8013xxxx).
    param($Exception)
    $current = $Exception
    while ($null -ne $current) {
        $code = [int]$current.HResult
        $text = '0x{0:X8}' -f $code
        if (($code -ne 0) -and (-not $text.StartsWith('0x8013'))) {
            return $text
        }
        $current = $current.InnerException
    }
    return $null
}

function Limit-Text {
    param($Text)
    if ($null -eq $Text) {
        return $null
    }
    $value = [string]$Text
    if ($value.Length -gt $OutputLimit) {
        return $value.Substring(0, $OutputLimit)
    }
    return $value
}

function Get-RegistryValue {
    param($Path, $Name)
    $item = Get-ItemProperty -LiteralPath $Path -ErrorAction SilentlyContinue
    return (Get-Property $item $Name)
}

function Get-OemCodePage {
    $value = Get-RegistryValue 'HKLM:\SYSTEM\CurrentControlSet\Control\Nls\CodePage' 'OEMCP'
    if ($value) {
        return [int]$value
    }
    return [System.Globalization.CultureInfo]::CurrentCulture.TextInfo.OEMCodePage
}

function Get-AnsiCodePage {
    $value = Get-RegistryValue 'HKLM:\SYSTEM\CurrentControlSet\Control\Nls\CodePage' 'ACP'
    if ($value) {
        return [int]$value
    }
    return [System.Globalization.CultureInfo]::CurrentCulture.TextInfo.ANSICodePage
}

function Invoke-Native {
    # Runs a native tool with the console's OEM code page as output encoding, so that PowerShell decodes its
    # localized text correctly, and returns the text and the exit code. The caller judges the exit code.
    param($FilePath, $ArgumentList, $CodePage)
    $command = (@([System.IO.Path]::GetFileName($FilePath)) + @($ArgumentList)) -join ' '
    if (-not (Test-Path -LiteralPath $FilePath)) {
        throw (New-AgentException -Message "$FilePath does not exist on this host" -Command $command)
    }
    $previousEncoding = $null
    try {
        $previousEncoding = [Console]::OutputEncoding
        [Console]::OutputEncoding = [System.Text.Encoding]::GetEncoding([int]$CodePage)
    }
    catch {
        # No console (PSRP): PowerShell decodes native output with its default, the OEM code page.
        $previousEncoding = $null
    }
    $lines = $null
    $exitCode = $null
    try {
        # Native stderr lines become error records with 2>&1; with 'Stop' the first one would end the run.
        $ErrorActionPreference = 'Continue'
        $lines = & $FilePath @ArgumentList 2>&1
        $exitCode = $LASTEXITCODE
    }
    finally {
        $ErrorActionPreference = 'Stop'
        if ($null -ne $previousEncoding) {
            try {
                [Console]::OutputEncoding = $previousEncoding
            }
            catch {
                # The console went away: nothing left to restore.
            }
        }
    }
    $text = (@($lines) | ForEach-Object { [string]$_ }) -join "`r`n"
    return [ordered]@{
        command = $command
        text = $text
        exit_code = $exitCode
    }
}

function Assert-NativeSuccess {
    param($Run)
    if ($Run['exit_code'] -ne 0) {
        $message = '{0} exited with code {1}' -f $Run['command'], $Run['exit_code']
        $hresult = Get-HResultFromText $Run['text']
        throw (New-AgentException -Message $message -Command $Run['command'] -ExitCode $Run['exit_code'] -Output (Limit-Text $Run['text']) -HResult $hresult)
    }
}

function Invoke-DiskShadow {
    # diskshadow /s with a temporary script (ASCII: it only holds diskshadow keywords).
    param($ScriptLines, $CodePage)
    $exe = Join-Path $SystemDir 'diskshadow.exe'
    if (-not (Test-Path -LiteralPath $exe)) {
        throw (New-AgentException -Message 'diskshadow.exe is not on this host (it ships with Windows Server only)' -Command 'diskshadow')
    }
    $name = 'shadowsnap-' + [guid]::NewGuid().ToString('N') + '.dsh'
    $scriptPath = Join-Path ([System.IO.Path]::GetTempPath()) $name
    $content = (@($ScriptLines) -join "`r`n") + "`r`n"
    [System.IO.File]::WriteAllText($scriptPath, $content, [System.Text.Encoding]::ASCII)
    try {
        return (Invoke-Native -FilePath $exe -ArgumentList @('/s', $scriptPath) -CodePage $CodePage)
    }
    finally {
        Remove-Item -LiteralPath $scriptPath -Force -ErrorAction SilentlyContinue
    }
}

function Invoke-Imds {
    # One IMDS request with short timeouts and no proxy (IMDS is link-local).
    param($Method, $Path, $Headers)
    $request = [System.Net.WebRequest]::Create('http://169.254.169.254' + $Path)
    $request.Method = $Method
    $request.Timeout = $ImdsTimeoutMs
    $request.ReadWriteTimeout = $ImdsTimeoutMs
    $request.Proxy = $null
    foreach ($headerName in @($Headers.Keys)) {
        $request.Headers.Add($headerName, [string]$Headers[$headerName])
    }
    if ($Method -eq 'PUT') {
        $request.ContentLength = 0
    }
    $response = $request.GetResponse()
    try {
        $stream = $response.GetResponseStream()
        $reader = New-Object -TypeName System.IO.StreamReader -ArgumentList @($stream, [System.Text.Encoding]::UTF8)
        return $reader.ReadToEnd()
    }
    finally {
        $response.Close()
    }
}

function Get-Ec2Identity {
    # IMDSv2: a session token, then the instance identity document; null when IMDS does not answer.
    try {
        $token = Invoke-Imds -Method 'PUT' -Path '/latest/api/token' -Headers @{ 'X-aws-ec2-metadata-token-ttl-seconds' = '60' }
        $document = Invoke-Imds -Method 'GET' -Path '/latest/dynamic/instance-identity/document' -Headers @{ 'X-aws-ec2-metadata-token' = $token }
        $identity = ConvertFrom-Json -InputObject $document
        return [ordered]@{
            instance_id = (Get-Property $identity 'instanceId')
            region = (Get-Property $identity 'region')
            availability_zone = (Get-Property $identity 'availabilityZone')
            account_id = (Get-Property $identity 'accountId')
            instance_type = (Get-Property $identity 'instanceType')
        }
    }
    catch {
        return $null
    }
}

function Get-AwsVssComponentsVersion {
    $roots = @(
        'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall',
        'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall'
    )
    foreach ($root in $roots) {
        foreach ($key in @(Get-ChildItem -LiteralPath $root -ErrorAction SilentlyContinue)) {
            $entry = Get-ItemProperty -LiteralPath $key.PSPath -ErrorAction SilentlyContinue
            $displayName = [string](Get-Property $entry 'DisplayName' '')
            if ($displayName -match 'Aws\s*Vss') {
                return [string](Get-Property $entry 'DisplayVersion' '')
            }
        }
    }
    $agent = Join-Path $env:ProgramFiles 'Amazon\AwsVssComponents\ec2-vss-agent.exe'
    if (Test-Path -LiteralPath $agent) {
        return [string](Get-Item -LiteralPath $agent).VersionInfo.FileVersion
    }
    return $null
}

function Get-FactsResult {
    $os = Get-CimInstance -ClassName Win32_OperatingSystem
    $productType = [int]$os.ProductType
    return [ordered]@{
        hostname = $env:COMPUTERNAME
        os_caption = [string]$os.Caption
        os_version = [string]$os.Version
        os_build = [string]$os.BuildNumber
        os_edition = (Get-RegistryValue 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion' 'EditionID')
        product_type = $productType
        is_server = ($productType -ne 1)
        powershell_version = $PSVersionTable.PSVersion.ToString()
        ui_culture = [System.Globalization.CultureInfo]::CurrentUICulture.Name
        oem_code_page = (Get-OemCodePage)
        ansi_code_page = (Get-AnsiCodePage)
        diskshadow_present = (Test-Path -LiteralPath (Join-Path $SystemDir 'diskshadow.exe'))
        aws_vss_components_version = (Get-AwsVssComponentsVersion)
        ec2 = (Get-Ec2Identity)
    }
}

function ConvertTo-DriveLetter {
    # Get-Partition and Get-Volume give a [char], NUL when there is no letter.
    param($Value)
    if ($null -eq $Value) {
        return $null
    }
    $text = ([string]$Value).Trim([char]0).Trim()
    if ($text.Length -eq 0) {
        return $null
    }
    return $text
}

function Test-FixedDrive {
    param($DriveType)
    $text = [string]$DriveType
    return (($text -eq 'Fixed') -or ($text -eq '3'))
}

function Get-VolumeExtentsType {
    # IOCTL_VOLUME_GET_VOLUME_DISK_EXTENTS: the disks under a volume, the only way to see the members of a
    # volume on dynamic disks. Compiled only when dynamic disks exist.
    $existing = 'ShadowsnapAgent.VolumeExtents' -as [type]
    if ($null -ne $existing) {
        return $existing
    }
    $source = @'
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
'@
    return (Add-Type -TypeDefinition $source -PassThru | Where-Object { $_.FullName -eq 'ShadowsnapAgent.VolumeExtents' })
}

function Get-DynamicDisks {
    # Volumes that live on no basic partition, by the disk numbers of their extents; nothing without LDM partitions.
    param($Partitions, $Volumes)
    $ldm = @($Partitions | Where-Object { ($LdmGptTypes -contains ([string]$_.GptType).ToLowerInvariant()) -or ($_.MbrType -eq $LdmMbrType) })
    if ($ldm.Count -eq 0) {
        return
    }
    $onPartitions = @{}
    foreach ($partition in $Partitions) {
        foreach ($path in $partition.AccessPaths) {
            if ($path) {
                $onPartitions[([string]$path).ToLowerInvariant()] = $true
            }
        }
    }
    $extentsType = Get-VolumeExtentsType
    $byDisk = [ordered]@{}
    foreach ($volume in $Volumes) {
        $uniqueId = [string]$volume.UniqueId
        if ((-not $uniqueId) -or $onPartitions.ContainsKey($uniqueId.ToLowerInvariant())) {
            continue
        }
        if (-not (Test-FixedDrive $volume.DriveType)) {
            continue
        }
        foreach ($number in $extentsType::DiskNumbers($uniqueId.TrimEnd('\'))) {
            $key = [string]$number
            if (-not $byDisk.Contains($key)) {
                $byDisk[$key] = New-Object -TypeName System.Collections.ArrayList
            }
            if (-not $byDisk[$key].Contains($uniqueId)) {
                [void]$byDisk[$key].Add($uniqueId)
            }
        }
    }
    foreach ($key in @($byDisk.Keys)) {
        [pscustomobject]@{
            DiskNumber = [int]$key
            VolumeUniqueIds = @($byDisk[$key])
        }
    }
}

function Get-StoragePools {
    # Storage Spaces pools (not the primordial one): member disks, virtual disks and the volumes on them.
    if (-not (Get-Command -Name Get-StoragePool -ErrorAction SilentlyContinue)) {
        return
    }
    foreach ($pool in @(Get-StoragePool -IsPrimordial $false -ErrorAction SilentlyContinue)) {
        $physicalDisks = @($pool | Get-PhysicalDisk | Select-Object -Property $PhysicalDiskProperties)
        $virtualDisks = @($pool | Get-VirtualDisk)
        $physicalNumbers = @()
        foreach ($physicalDisk in $physicalDisks) {
            $deviceId = [string]$physicalDisk.DeviceId
            if ($deviceId -match '^\d+$') {
                $physicalNumbers += [int]$deviceId
            }
        }
        $virtualNames = @()
        $virtualNumbers = @()
        $volumeIds = @()
        foreach ($virtualDisk in $virtualDisks) {
            $virtualNames += [string]$virtualDisk.FriendlyName
            foreach ($disk in @($virtualDisk | Get-Disk -ErrorAction SilentlyContinue)) {
                $virtualNumbers += [int]$disk.Number
                foreach ($partition in @($disk | Get-Partition -ErrorAction SilentlyContinue)) {
                    foreach ($volume in @($partition | Get-Volume -ErrorAction SilentlyContinue)) {
                        $volumeIds += [string]$volume.UniqueId
                    }
                }
            }
        }
        [pscustomobject]@{
            FriendlyName = [string]$pool.FriendlyName
            UniqueId = [string]$pool.UniqueId
            PhysicalDiskNumbers = $physicalNumbers
            PhysicalDisks = $physicalDisks
            VirtualDisks = $virtualNames
            VirtualDiskNumbers = $virtualNumbers
            VolumeUniqueIds = $volumeIds
        }
    }
}

function Get-StorageResult {
    $disks = @(Get-Disk | Select-Object -Property $DiskProperties)
    $diskDrives = @(Get-CimInstance -ClassName Win32_DiskDrive | Select-Object -Property $DiskDriveProperties)
    $partitions = @(Get-Partition | Select-Object -Property $PartitionProperties)
    $volumes = @(Get-Volume | Select-Object -Property $VolumeProperties)
    $shadowStorage = @(Get-CimInstance -ClassName Win32_ShadowStorage | Select-Object -Property $ShadowStorageProperties)
    $dynamicDisks = @(Get-DynamicDisks -Partitions $partitions -Volumes $volumes)
    $storagePools = @(Get-StoragePools)
    return [ordered]@{
        disks = $disks
        disk_drives = $diskDrives
        partitions = $partitions
        volumes = $volumes
        shadow_storage = $shadowStorage
        dynamic_disks = $dynamicDisks
        storage_pools = $storagePools
    }
}

function Get-WritersResult {
    param($OpArgs)
    $sources = @(Get-Property $OpArgs 'sources' @('vssadmin'))
    if ($sources.Count -eq 0) {
        $sources = @('vssadmin')
    }
    $codePage = Get-OemCodePage
    $outputs = [ordered]@{}
    foreach ($source in $sources) {
        $name = [string]$source
        $run = $null
        if ($name -eq 'vssadmin') {
            $run = Invoke-Native -FilePath (Join-Path $SystemDir 'vssadmin.exe') -ArgumentList @('list', 'writers') -CodePage $codePage
        }
        elseif ($name -eq 'diskshadow_status') {
            $run = Invoke-DiskShadow -ScriptLines @('list writers status') -CodePage $codePage
        }
        elseif ($name -eq 'diskshadow_detailed') {
            $run = Invoke-DiskShadow -ScriptLines @('list writers status', 'list writers detailed') -CodePage $codePage
        }
        else {
            throw (New-AgentException -Message "unknown writers source '$name' (known: vssadmin, diskshadow_status, diskshadow_detailed)")
        }
        Assert-NativeSuccess $run
        $outputs[$name] = $run
    }
    return [ordered]@{
        oem_code_page = $codePage
        outputs = $outputs
    }
}

function ConvertTo-DmtfDate {
    # CIM gives a DateTime; the protocol carries the WMI (DMTF) text in UTC, as Get-WmiObject prints it.
    param($Value)
    if ($null -eq $Value) {
        return $null
    }
    if ($Value -is [datetime]) {
        return $Value.ToUniversalTime().ToString('yyyyMMddHHmmss.ffffff', [System.Globalization.CultureInfo]::InvariantCulture) + '+000'
    }
    return [string]$Value
}

function Get-ShadowsResult {
    $shadows = @(Get-CimInstance -ClassName Win32_ShadowCopy | Select-Object -Property $ShadowCopyProperties)
    return [ordered]@{
        shadows = $shadows
    }
}

# ---- Session ops of the shadow engine (docs/vss-session.md) --------------------------------------------------
# The controller generates every file; these functions only write them, run diskshadow detached as SYSTEM through a
# scheduled task, read the run directory back and clean up. Every wait is bounded.

function Get-IntArgument {
    # A whole-number argument, clamped to [Minimum, Maximum]; Default when absent.
    param($OpArgs, $Name, $Default, $Minimum, $Maximum)
    $value = Get-Property $OpArgs $Name $null
    if ($null -eq $value) {
        return $Default
    }
    $number = 0
    if (-not [int]::TryParse([string]$value, [ref]$number)) {
        throw (New-AgentException -Message ("argument '{0}' must be a whole number, not '{1}'" -f $Name, $value))
    }
    if ($number -lt $Minimum) {
        return $Minimum
    }
    if ($number -gt $Maximum) {
        return $Maximum
    }
    return $number
}

function Get-RunId {
    param($OpArgs)
    $runId = [string](Get-Property $OpArgs 'run_id' '')
    if ($runId -notmatch $RunIdPattern) {
        throw (New-AgentException -Message ("run id '{0}' is not valid (letters, digits, '.', '_' or '-', at most 64)" -f $runId))
    }
    return $runId
}

function Get-RunDirectory {
    param($RunId)
    return (Join-Path $RunRoot $RunId)
}

function ConvertTo-BracedGuid {
    # '{guid}' in lower case; anything else is refused, so that no text reaches a diskshadow script unchecked.
    param($Value)
    $guid = [guid]::Empty
    $text = ([string]$Value).Trim()
    if (-not [guid]::TryParse($text, [ref]$guid)) {
        throw (New-AgentException -Message ("'{0}' is not a GUID" -f $text))
    }
    return ('{' + $guid.ToString('D') + '}')
}

function Read-SharedBytes {
    # The bytes of a file another process may still be writing (diskshadow's log).
    param($Path)
    $share = [System.IO.FileShare]::ReadWrite -bor [System.IO.FileShare]::Delete
    $stream = New-Object -TypeName System.IO.FileStream -ArgumentList @($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read, $share)
    try {
        $buffer = New-Object -TypeName 'byte[]' -ArgumentList ([int]$stream.Length)
        $read = 0
        while ($read -lt $buffer.Length) {
            $count = $stream.Read($buffer, $read, $buffer.Length - $read)
            if ($count -le 0) {
                break
            }
            $read += $count
        }
        if ($read -lt $buffer.Length) {
            $trimmed = New-Object -TypeName 'byte[]' -ArgumentList $read
            [System.Array]::Copy($buffer, $trimmed, $read)
            $buffer = $trimmed
        }
        return , $buffer
    }
    finally {
        $stream.Dispose()
    }
}

function Read-SmallText {
    # A small ASCII file written by the batch files or the agent, trimmed; null when it does not exist.
    param($Path)
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) {
        return $null
    }
    return ([System.Text.Encoding]::ASCII.GetString((Read-SharedBytes $Path))).Trim()
}

function Write-AtomicText {
    # Write next to the target, then rename: a batch file polling for the target never reads half a file.
    param($Path, $Text)
    $temporary = $Path + '.tmp'
    [System.IO.File]::WriteAllText($temporary, $Text, [System.Text.Encoding]::ASCII)
    Move-Item -LiteralPath $temporary -Destination $Path -Force
}

function Read-CreatedRecord {
    # created.txt (record.cmd): VSS_SHADOW_SET=<id> and one <alias>=<shadow id> line per volume.
    param($Directory)
    $path = Join-Path $Directory 'created.txt'
    $text = Read-SmallText $path
    if ($null -eq $text) {
        return $null
    }
    $setId = $null
    $shadows = [ordered]@{}
    foreach ($line in ($text -split "`r?`n")) {
        $index = $line.IndexOf('=')
        if ($index -lt 1) {
            continue
        }
        $name = $line.Substring(0, $index).Trim()
        $value = $line.Substring($index + 1).Trim()
        if ($name -eq 'VSS_SHADOW_SET') {
            $setId = $value
        }
        else {
            $shadows[$name] = $value
        }
    }
    return [ordered]@{
        shadow_set_id = $setId
        shadows = $shadows
    }
}

function Read-SessionLog {
    # diskshadow.log in the console's OEM code page; the last $LogLimit characters when it is longer.
    param($Directory)
    $path = Join-Path $Directory 'diskshadow.log'
    $log = @{ text = $null; truncated = $false }
    if (-not (Test-Path -LiteralPath $path -PathType Leaf)) {
        return $log
    }
    $encoding = [System.Text.Encoding]::GetEncoding([int](Get-OemCodePage))
    $text = $encoding.GetString((Read-SharedBytes $path))
    if ($text.Length -gt $LogLimit) {
        $log['text'] = $text.Substring($text.Length - $LogLimit)
        $log['truncated'] = $true
    }
    else {
        $log['text'] = $text
    }
    return $log
}

function Get-SessionTask {
    param($RunId)
    try {
        return (Get-ScheduledTask -TaskPath $TaskPath -TaskName ($TaskPrefix + $RunId) -ErrorAction Stop)
    }
    catch {
        return $null
    }
}

function Test-TaskActive {
    # Running or queued, or registered and started but not run yet.
    param($Task)
    if ($null -eq $Task) {
        return $false
    }
    $state = [string]$Task.State
    if (($state -eq 'Running') -or ($state -eq 'Queued') -or ($state -eq '4') -or ($state -eq '2')) {
        return $true
    }
    $info = $null
    try {
        $info = $Task | Get-ScheduledTaskInfo -ErrorAction Stop
    }
    catch {
        $info = $null
    }
    return (($null -ne $info) -and ([int64](Get-Property $info 'LastTaskResult' 0) -eq $TaskNeverRan))
}

function Get-ActiveSessionTasks {
    $tasks = @()
    try {
        $tasks = @(Get-ScheduledTask -TaskPath $TaskPath -ErrorAction Stop)
    }
    catch {
        $tasks = @()
    }
    foreach ($task in $tasks) {
        if (Test-TaskActive $task) {
            $task
        }
    }
}

function Get-TaskTimeLimitSeconds {
    param($Task)
    $text = [string](Get-Property (Get-Property $Task 'Settings' $null) 'ExecutionTimeLimit' '')
    try {
        $seconds = [System.Xml.XmlConvert]::ToTimeSpan($text).TotalSeconds
        if ($seconds -gt 0) {
            return $seconds
        }
    }
    catch {
        # No limit, or not readable: treat the task as unbounded.
    }
    return [double]::MaxValue
}

function Stop-SessionTask {
    # Ends the run's task and the diskshadow it started (the scheduler ends cmd.exe; its child may outlive it).
    param($RunId)
    try {
        $null = Stop-ScheduledTask -TaskPath $TaskPath -TaskName ($TaskPrefix + $RunId) -ErrorAction Stop
    }
    catch {
        # Not running, or gone.
    }
    $script = Join-Path (Get-RunDirectory $RunId) 'snapshot.dsh'
    foreach ($process in @(Get-CimInstance -ClassName Win32_Process -Filter "Name = 'diskshadow.exe'")) {
        $commandLine = [string](Get-Property $process 'CommandLine' '')
        if ($commandLine.IndexOf($script, [System.StringComparison]::OrdinalIgnoreCase) -ge 0) {
            Stop-Process -Id ([int]$process.ProcessId) -Force -ErrorAction SilentlyContinue
        }
    }
}

function Unregister-SessionTask {
    param($RunId)
    try {
        $null = Unregister-ScheduledTask -TaskPath $TaskPath -TaskName ($TaskPrefix + $RunId) -Confirm:$false -ErrorAction Stop
    }
    catch {
        # Already gone.
    }
}

function Get-SessionStatus {
    # The state of a run, from its directory and its task (docs/vss-session.md): starting, created, completed,
    # failed, or missing. The task is read before exit.txt, so a run that ends in between is never taken for stopped.
    param($RunId, [switch]$WithLog)
    $directory = Get-RunDirectory $RunId
    $status = [ordered]@{
        run_id = $RunId
        run_dir = $directory
        state = 'missing'
        shadow_set_id = $null
        shadows = [ordered]@{}
        exit_code = $null
        log = $null
        log_truncated = $false
        task_running = $false
        task_state = $null
        release = $null
    }
    if (-not (Test-Path -LiteralPath $directory -PathType Container)) {
        return $status
    }
    $task = Get-SessionTask $RunId
    $active = Test-TaskActive $task
    $status['task_running'] = $active
    if ($null -ne $task) {
        $status['task_state'] = [string]$task.State
    }
    $record = Read-CreatedRecord $directory
    if ($null -ne $record) {
        $status['shadow_set_id'] = $record['shadow_set_id']
        $status['shadows'] = $record['shadows']
    }
    $exitText = Read-SmallText (Join-Path $directory 'exit.txt')
    if ($exitText) {
        $code = 0
        if ([int]::TryParse($exitText, [ref]$code)) {
            $status['exit_code'] = $code
        }
        else {
            $status['exit_code'] = -1
        }
    }
    $status['release'] = Read-SmallText (Join-Path $directory 'release.txt')
    if ($null -ne $status['exit_code']) {
        if ($status['exit_code'] -eq 0) {
            $status['state'] = 'completed'
        }
        else {
            $status['state'] = 'failed'
        }
    }
    elseif ($active) {
        if ($null -ne $record) {
            $status['state'] = 'created'
        }
        else {
            $status['state'] = 'starting'
        }
    }
    else {
        # The task ended without exit.txt: stopped at its time limit, or killed.
        $status['state'] = 'failed'
    }
    if ($WithLog) {
        $log = Read-SessionLog $directory
        $status['log'] = $log['text']
        $status['log_truncated'] = $log['truncated']
    }
    return $status
}

function Wait-Session {
    # Polls the run until it has ended (Until 'end') or has created its set or ended (Until 'created'), or the
    # wait is over; returns its status with the log.
    param($RunId, $Seconds, $Until)
    $deadline = [DateTime]::UtcNow.AddSeconds($Seconds)
    while ($true) {
        $status = Get-SessionStatus $RunId
        $state = $status['state']
        $settled = ($state -eq 'completed') -or ($state -eq 'failed') -or ($state -eq 'missing')
        if ($settled -or (($Until -eq 'created') -and ($state -eq 'created')) -or ([DateTime]::UtcNow -ge $deadline)) {
            return (Get-SessionStatus $RunId -WithLog)
        }
        Start-Sleep -Milliseconds 100
    }
}

function Initialize-RunRoot {
    # %ProgramData% lets every user create folders: the agent's folder gets an ACL of its own (SYSTEM and
    # Administrators only, owner Administrators), since SYSTEM runs what is written there.
    if (-not (Test-Path -LiteralPath $ShadowsnapRoot)) {
        $null = New-Item -ItemType Directory -Path $ShadowsnapRoot
    }
    $security = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
    $security.SetAccessRuleProtection($true, $false)
    $inherit = [System.Security.AccessControl.InheritanceFlags]::ContainerInherit -bor [System.Security.AccessControl.InheritanceFlags]::ObjectInherit
    foreach ($sid in @('S-1-5-18', 'S-1-5-32-544')) {
        $identity = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $sid
        $rule = New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList @(
            $identity, [System.Security.AccessControl.FileSystemRights]::FullControl, $inherit,
            [System.Security.AccessControl.PropagationFlags]::None, [System.Security.AccessControl.AccessControlType]::Allow
        )
        $security.AddAccessRule($rule)
    }
    $security.SetOwner((New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-32-544'))
    try {
        [System.IO.Directory]::SetAccessControl($ShadowsnapRoot, $security)
    }
    catch {
        throw (New-AgentException -Message ("cannot restrict {0} to SYSTEM and Administrators: {1}" -f $ShadowsnapRoot, $_.Exception.Message))
    }
    if (-not (Test-Path -LiteralPath $RunRoot)) {
        $null = New-Item -ItemType Directory -Path $RunRoot
    }
}

function Register-SessionTask {
    # The run's scheduled task: run.cmd as SYSTEM, highest run level, with an execution time limit.
    param($RunId, $Directory, $TimeLimitSeconds)
    # NT AUTHORITY\SYSTEM by its SID: the account name is translated on some display languages.
    $system = (New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-18').Translate([System.Security.Principal.NTAccount]).Value
    $command = Join-Path $env:SystemRoot 'System32\cmd.exe'
    $action = New-ScheduledTaskAction -Execute $command -Argument ('/d /c "' + (Join-Path $Directory 'run.cmd') + '"') -WorkingDirectory $Directory
    $principal = New-ScheduledTaskPrincipal -UserId $system -LogonType ServiceAccount -RunLevel Highest
    $settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit (New-TimeSpan -Seconds $TimeLimitSeconds) -MultipleInstances IgnoreNew -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
    $null = Register-ScheduledTask -TaskPath $TaskPath -TaskName ($TaskPrefix + $RunId) -Action $action -Principal $principal -Settings $settings -Description ('shadowsnap.ec2 VSS session ' + $RunId) -Force
    $null = Start-ScheduledTask -TaskPath $TaskPath -TaskName ($TaskPrefix + $RunId)
}

function Get-SetShadowIds {
    # Ids of the shadow copies of a set (or of the listed ids) that exist now, '{guid}' in lower case.
    param($SetId, $ShadowIds)
    $wanted = @(@($ShadowIds) | Where-Object { $null -ne $_ } | ForEach-Object { ConvertTo-BracedGuid $_ })
    $set = $null
    if ($SetId) {
        $set = ConvertTo-BracedGuid $SetId
    }
    foreach ($shadow in @(Get-CimInstance -ClassName Win32_ShadowCopy)) {
        $id = ([string]$shadow.ID).ToLowerInvariant()
        if ((($null -ne $set) -and (([string]$shadow.SetID).ToLowerInvariant() -eq $set)) -or ($wanted -contains $id)) {
            $id
        }
    }
}

function Remove-Shadows {
    # Deletes a set's shadow copies (or the listed ones) with diskshadow; returns the ids that were deleted.
    param($SetId, $ShadowIds)
    $before = @(Get-SetShadowIds -SetId $SetId -ShadowIds $ShadowIds)
    if ($before.Count -eq 0) {
        return
    }
    $lines = @()
    if ($SetId) {
        $lines += 'delete shadows set ' + (ConvertTo-BracedGuid $SetId)
    }
    foreach ($id in @($ShadowIds)) {
        if ($null -ne $id) {
            $lines += 'delete shadows id ' + (ConvertTo-BracedGuid $id)
        }
    }
    $run = Invoke-DiskShadow -ScriptLines $lines -CodePage (Get-OemCodePage)
    $after = @(Get-SetShadowIds -SetId $SetId -ShadowIds $ShadowIds)
    if ($after.Count -gt 0) {
        $message = 'diskshadow did not delete the shadow copies {0}' -f ($after -join ', ')
        throw (New-AgentException -Message $message -Command $run['command'] -ExitCode $run['exit_code'] -Output (Limit-Text $run['text']) -HResult (Get-HResultFromText $run['text']))
    }
    foreach ($id in $before) {
        $id
    }
}

function Invoke-SessionCleanup {
    # Runs older than OlderThanSeconds: stop the task (unless it is still within its own time limit), delete the
    # shadows recorded in created.txt unless the run was released 'ok' (those were deleted then, or kept on purpose),
    # unregister the task, remove the directory. One entry per run; a failure is kept in its entry.
    param($OlderThanSeconds)
    $now = [DateTime]::UtcNow
    $directories = @()
    if (Test-Path -LiteralPath $RunRoot) {
        $directories = @(Get-ChildItem -LiteralPath $RunRoot -Directory)
    }
    foreach ($directory in $directories) {
        $age = ($now - $directory.CreationTimeUtc).TotalSeconds
        if (($age -lt $OlderThanSeconds) -or ($directory.Name -notmatch $RunIdPattern)) {
            continue
        }
        $runId = $directory.Name
        $task = Get-SessionTask $runId
        if ((Test-TaskActive $task) -and ($age -lt (Get-TaskTimeLimitSeconds $task))) {
            continue
        }
        $entry = [ordered]@{
            run_id = $runId
            shadow_set_id = $null
            deleted_shadow_ids = @()
            error = $null
        }
        try {
            Stop-SessionTask $runId
            $record = Read-CreatedRecord $directory.FullName
            $release = Read-SmallText (Join-Path $directory.FullName 'release.txt')
            if (($null -ne $record) -and $record['shadow_set_id'] -and ($release -ne 'ok')) {
                $entry['shadow_set_id'] = $record['shadow_set_id']
                $entry['deleted_shadow_ids'] = @(Remove-Shadows -SetId $record['shadow_set_id'])
            }
            Unregister-SessionTask $runId
            Remove-Item -LiteralPath $directory.FullName -Recurse -Force
        }
        catch {
            $entry['error'] = [string]$_.Exception.Message
        }
        $entry
    }
}

function Start-Session {
    param($OpArgs)
    $runId = Get-RunId $OpArgs
    $directory = Get-RunDirectory $runId
    $waitSeconds = Get-IntArgument $OpArgs 'wait_seconds' 0 0 $MaxWaitSeconds
    $timeLimit = Get-IntArgument $OpArgs 'time_limit_seconds' $DefaultTimeLimitSeconds 60 86400
    $expected = [string](Get-Property $OpArgs 'run_dir' '')
    if ($expected -and ($expected.TrimEnd('\') -ne $directory.TrimEnd('\'))) {
        throw (New-AgentException -Message ("the session files were generated for {0}, but this host's run directory is {1} (ProgramData is {2})" -f $expected, $directory, $env:ProgramData))
    }
    $files = Get-Property $OpArgs 'files' $null
    if ($null -eq $files) {
        throw (New-AgentException -Message 'session_start needs files (name -> text)')
    }
    $names = @($files.PSObject.Properties | ForEach-Object { $_.Name })
    foreach ($required in @('snapshot.dsh', 'record.cmd', 'run.cmd')) {
        if ($names -notcontains $required) {
            throw (New-AgentException -Message ("session_start needs the file {0}" -f $required))
        }
    }
    foreach ($name in $names) {
        if ($SessionFiles -notcontains $name) {
            throw (New-AgentException -Message ("'{0}' is not a session file ({1})" -f $name, ($SessionFiles -join ', ')))
        }
        if ([string](Get-Property $files $name '') -match '[^\x00-\x7F]') {
            throw (New-AgentException -Message ("session file {0} is not ASCII" -f $name))
        }
    }
    $cleaned = @()
    if ($null -ne (Get-Property $OpArgs 'cleanup_older_than_seconds' $null)) {
        $cleaned = @(Invoke-SessionCleanup -OlderThanSeconds (Get-IntArgument $OpArgs 'cleanup_older_than_seconds' 0 60 31536000))
    }
    # A run whose diskshadow has exited (exit.txt) creates nothing any more, even while its task winds down.
    $others = @(Get-ActiveSessionTasks | Where-Object { $_.TaskName -ne ($TaskPrefix + $runId) } | Where-Object {
            -not (Test-Path -LiteralPath (Join-Path (Get-RunDirectory $_.TaskName.Substring($TaskPrefix.Length)) 'exit.txt'))
        } | ForEach-Object { $_.TaskName })
    if ($others.Count -gt 0) {
        $message = 'another shadowsnap session is running on this host ({0}); VSS creates one shadow copy set at a time' -f ($others -join ', ')
        throw (New-AgentException -Message $message -HResult $InProgressHResult)
    }
    if (Test-Path -LiteralPath $directory) {
        throw (New-AgentException -Message ("run {0} already exists ({1}); a run id is used once" -f $runId, $directory))
    }
    Initialize-RunRoot
    $null = New-Item -ItemType Directory -Path $directory
    foreach ($name in $names) {
        [System.IO.File]::WriteAllText((Join-Path $directory $name), [string](Get-Property $files $name), [System.Text.Encoding]::ASCII)
    }
    try {
        Register-SessionTask -RunId $runId -Directory $directory -TimeLimitSeconds $timeLimit
    }
    catch {
        Unregister-SessionTask $runId
        Remove-Item -LiteralPath $directory -Recurse -Force -ErrorAction SilentlyContinue
        throw
    }
    $status = Wait-Session -RunId $runId -Seconds $waitSeconds -Until 'created'
    $status['cleaned'] = $cleaned
    return $status
}

function Invoke-SessionStatus {
    param($OpArgs)
    $runId = Get-RunId $OpArgs
    $until = [string](Get-Property $OpArgs 'until' 'end')
    if (($until -ne 'end') -and ($until -ne 'created')) {
        throw (New-AgentException -Message ("until must be 'end' or 'created', not '{0}'" -f $until))
    }
    return (Wait-Session -RunId $runId -Seconds (Get-IntArgument $OpArgs 'wait_seconds' 0 0 $MaxWaitSeconds) -Until $until)
}

function Invoke-SessionRelease {
    param($OpArgs)
    $runId = Get-RunId $OpArgs
    $decision = [string](Get-Property $OpArgs 'decision' '')
    if (($decision -ne 'ok') -and ($decision -ne 'abort')) {
        throw (New-AgentException -Message ("decision must be 'ok' or 'abort', not '{0}'" -f $decision))
    }
    $waitSeconds = Get-IntArgument $OpArgs 'wait_seconds' 0 0 $MaxWaitSeconds
    $deleteShadows = [bool](Get-Property $OpArgs 'delete_shadows' $false)
    $directory = Get-RunDirectory $runId
    $status = Get-SessionStatus $runId -WithLog
    $releasePath = Join-Path $directory 'release.txt'
    $releasedBefore = Test-Path -LiteralPath $releasePath
    if ($status['state'] -ne 'missing') {
        if (-not $releasedBefore) {
            Write-AtomicText -Path $releasePath -Text ($decision + "`r`n")
        }
        $status = Wait-Session -RunId $runId -Seconds $waitSeconds -Until 'end'
        if (((Read-SmallText $releasePath) -eq 'abort') -and $status['task_running']) {
            Stop-SessionTask $runId
            $status = Get-SessionStatus $runId -WithLog
        }
    }
    $present = @()
    $deleted = @()
    if ($status['shadow_set_id']) {
        $present = @(Get-SetShadowIds -SetId $status['shadow_set_id'])
        if ($deleteShadows -and (-not $status['task_running'])) {
            $deleted = @(Remove-Shadows -SetId $status['shadow_set_id'])
        }
    }
    if (($status['state'] -ne 'missing') -and (-not $status['task_running'])) {
        Unregister-SessionTask $runId
    }
    $status['decision'] = Read-SmallText $releasePath
    $status['released_before'] = $releasedBefore
    $status['present_shadow_ids'] = $present
    $status['deleted_shadow_ids'] = $deleted
    return $status
}

function Invoke-ShadowDelete {
    param($OpArgs)
    $setId = Get-Property $OpArgs 'shadow_set_id' $null
    $ids = @(Get-Property $OpArgs 'shadow_ids' @())
    if ((-not $setId) -and ($ids.Count -eq 0)) {
        throw (New-AgentException -Message 'shadow_delete needs shadow_set_id or shadow_ids')
    }
    return [ordered]@{
        deleted_shadow_ids = @(Remove-Shadows -SetId $setId -ShadowIds $ids)
    }
}

function Restart-ServiceBounded {
    # Stop (with the services that depend on it), start, wait until Running; every wait bounded. Restart-Service
    # itself waits without a limit.
    param($Name, $TimeoutSeconds)
    if ($Name -notmatch '^[A-Za-z0-9_.$-][A-Za-z0-9 _.$-]{0,255}$') {
        throw (New-AgentException -Message ("'{0}' is not a service name" -f $Name))
    }
    $service = Get-Service -Name $Name -ErrorAction SilentlyContinue
    if ($null -eq $service) {
        throw (New-AgentException -Message ("there is no service '{0}' on this host" -f $Name))
    }
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $timeout = New-TimeSpan -Seconds $TimeoutSeconds
    $previous = [string]$service.Status
    $dependents = @($service.DependentServices | Where-Object { [string]$_.Status -eq 'Running' })
    try {
        if ($previous -ne 'Stopped') {
            if ($previous -ne 'StopPending') {
                # ServiceController.Stop stops the running dependent services first.
                $service.Stop()
            }
            $service.WaitForStatus('Stopped', $timeout)
        }
        $service.Start()
        $service.WaitForStatus('Running', $timeout)
        foreach ($dependent in $dependents) {
            $dependent.Refresh()
            if ([string]$dependent.Status -ne 'Running') {
                if ([string]$dependent.Status -ne 'StartPending') {
                    $dependent.Start()
                }
                $dependent.WaitForStatus('Running', $timeout)
            }
        }
    }
    catch {
        $service.Refresh()
        $message = "service '{0}' did not restart within {1} s (status now {2}): {3}" -f $Name, $TimeoutSeconds, [string]$service.Status, $_.Exception.Message
        throw (New-AgentException -Message $message)
    }
    $service.Refresh()
    return [ordered]@{
        name = [string]$service.Name
        display_name = [string]$service.DisplayName
        previous_status = $previous
        status = [string]$service.Status
        restarted_dependents = @($dependents | ForEach-Object { [string]$_.Name })
        elapsed_ms = [int]$clock.ElapsedMilliseconds
    }
}

function Invoke-ServiceRestart {
    param($OpArgs)
    $names = @()
    $single = Get-Property $OpArgs 'name' $null
    if ($single) {
        $names += [string]$single
    }
    foreach ($item in @(Get-Property $OpArgs 'names' @())) {
        if (($null -ne $item) -and ($names -notcontains [string]$item)) {
            $names += [string]$item
        }
    }
    if ($names.Count -eq 0) {
        throw (New-AgentException -Message 'service_restart needs name (or names)')
    }
    $timeoutSeconds = Get-IntArgument $OpArgs 'timeout_seconds' $ServiceTimeoutDefault 1 $ServiceTimeoutMax
    $services = @()
    foreach ($name in $names) {
        $services += Restart-ServiceBounded -Name $name -TimeoutSeconds $timeoutSeconds
    }
    return [ordered]@{
        services = $services
    }
}

function Invoke-FileRead {
    # A file's bytes as base64, with its size and SHA-256 (the controller checks both); bounded by max_bytes.
    param($OpArgs)
    $path = [string](Get-Property $OpArgs 'path' '')
    if (-not $path) {
        throw (New-AgentException -Message 'file_read needs path')
    }
    $limit = Get-IntArgument $OpArgs 'max_bytes' $FileReadDefaultLimit 1 $FileReadMaxLimit
    if (-not (Test-Path -LiteralPath $path -PathType Leaf)) {
        throw (New-AgentException -Message ("there is no file {0}" -f $path))
    }
    $item = Get-Item -LiteralPath $path
    if ($item.Length -gt $limit) {
        throw (New-AgentException -Message ("{0} is {1} bytes, more than max_bytes ({2})" -f $item.FullName, $item.Length, $limit))
    }
    $bytes = Read-SharedBytes $item.FullName
    # The CryptoServiceProvider class also works when Windows enforces FIPS-compliant algorithms.
    $sha256 = New-Object -TypeName System.Security.Cryptography.SHA256CryptoServiceProvider
    try {
        $hash = -join @($sha256.ComputeHash($bytes) | ForEach-Object { $_.ToString('x2') })
    }
    finally {
        $sha256.Dispose()
    }
    return [ordered]@{
        path = [string]$item.FullName
        size = $bytes.Length
        sha256 = $hash
        content_base64 = [System.Convert]::ToBase64String($bytes)
    }
}

function Invoke-SessionOp {
    # The ops that change the host (never batched, never retried by the controller), and file_read.
    param($Op, $OpArgs)
    if ($Op -eq 'session_start') {
        return (Start-Session -OpArgs $OpArgs)
    }
    elseif ($Op -eq 'session_status') {
        return (Invoke-SessionStatus -OpArgs $OpArgs)
    }
    elseif ($Op -eq 'session_release') {
        return (Invoke-SessionRelease -OpArgs $OpArgs)
    }
    elseif ($Op -eq 'shadow_delete') {
        return (Invoke-ShadowDelete -OpArgs $OpArgs)
    }
    elseif ($Op -eq 'session_cleanup') {
        $olderThan = Get-IntArgument $OpArgs 'older_than_seconds' $null 60 31536000
        if ($null -eq $olderThan) {
            throw (New-AgentException -Message 'session_cleanup needs older_than_seconds')
        }
        return [ordered]@{
            cleaned = @(Invoke-SessionCleanup -OlderThanSeconds $olderThan)
        }
    }
    elseif ($Op -eq 'service_restart') {
        return (Invoke-ServiceRestart -OpArgs $OpArgs)
    }
    elseif ($Op -eq 'file_read') {
        return (Invoke-FileRead -OpArgs $OpArgs)
    }
    throw (New-AgentException -Message ("unknown session op '{0}'" -f $Op))
}

function New-ErrorAnswer {
    param($Op, $ErrorRecord, $Milliseconds)
    $exception = $ErrorRecord.Exception
    $command = $null
    $exitCode = $null
    $output = $null
    $hresult = $null
    if ($exception.Data.Contains('shadowsnap_command')) {
        $command = $exception.Data['shadowsnap_command']
        $exitCode = $exception.Data['shadowsnap_exit_code']
        $output = $exception.Data['shadowsnap_output']
        $hresult = $exception.Data['shadowsnap_hresult']
    }
    if (-not $hresult) {
        $hresult = Get-HResultFromException $exception
    }
    return [ordered]@{
        protocol = $AgentProtocol
        op = $Op
        ok = $false
        error = [ordered]@{
            message = [string]$exception.Message
            hresult = $hresult
            command = $command
            exit_code = $exitCode
            output = $output
            type = $exception.GetType().FullName
            where = [string]$ErrorRecord.ScriptStackTrace
        }
        elapsed_ms = [int]$Milliseconds
    }
}

function ConvertTo-AnswerJson {
    param($Answer)
    return (ConvertTo-Json -InputObject $Answer -Depth $JsonDepth -Compress)
}

function Invoke-Request {
    # One read op, answered as a JSON document (ok or error).
    param($Op, $OpArgs)
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    try {
        $result = $null
        if ($Op -eq 'facts') {
            $result = Get-FactsResult
        }
        elseif ($Op -eq 'storage') {
            $result = Get-StorageResult
        }
        elseif ($Op -eq 'writers') {
            $result = Get-WritersResult -OpArgs $OpArgs
        }
        elseif ($Op -eq 'shadows') {
            $result = Get-ShadowsResult
        }
        elseif ($SessionOps -contains $Op) {
            $result = Invoke-SessionOp -Op $Op -OpArgs $OpArgs
        }
        else {
            throw (New-AgentException -Message ("unknown op '{0}' (this agent answers: {1}, batch)" -f $Op, (($ReadOps + $SessionOps) -join ', ')))
        }
        $answer = [ordered]@{
            protocol = $AgentProtocol
            op = $Op
            ok = $true
            result = $result
            elapsed_ms = [int]$clock.ElapsedMilliseconds
        }
        return (ConvertTo-AnswerJson $answer)
    }
    catch {
        return (ConvertTo-AnswerJson (New-ErrorAnswer -Op $Op -ErrorRecord $_ -Milliseconds $clock.ElapsedMilliseconds))
    }
}

function Invoke-Batch {
    # Several read ops in one round trip. Each answer is serialized on its own (so that nesting never reaches the
    # ConvertTo-Json depth limit) and the batch answer is assembled around them.
    param($OpArgs)
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $requests = @(Get-Property $OpArgs 'requests' @())
    if ($requests.Count -eq 0) {
        throw (New-AgentException -Message 'a batch needs at least one request in args.requests')
    }
    foreach ($item in $requests) {
        $itemOp = [string](Get-Property $item 'op' '')
        if ($ReadOps -notcontains $itemOp) {
            throw (New-AgentException -Message ("op '{0}' cannot be batched: a batch holds read ops only ({1})" -f $itemOp, ($ReadOps -join ', ')))
        }
    }
    $parts = @()
    foreach ($item in $requests) {
        $parts += Invoke-Request -Op ([string](Get-Property $item 'op')) -OpArgs (Get-Property $item 'args')
    }
    return ('{"protocol":' + $AgentProtocol + ',"op":"batch","ok":true,"result":{"answers":[' + ($parts -join ',') + ']},"elapsed_ms":' + [int]$clock.ElapsedMilliseconds + '}')
}

function ConvertTo-AsciiJson {
    # Non-ASCII characters as \uXXXX escapes: the document is ASCII, whatever the console's encoding does to it.
    param($Json)
    $evaluator = { param($match) '\u{0:x4}' -f [int][char]$match.Value }
    return [regex]::Replace($Json, '[^\x00-\x7F]', [System.Text.RegularExpressions.MatchEvaluator]$evaluator)
}

$answerJson = $null
$requestOp = $null
try {
    $request = ConvertFrom-Json -InputObject ([string]$RequestJson)
    $requestOp = Get-Property $request 'op'
    $version = Get-Property $request 'protocol'
    if ($version -ne $AgentProtocol) {
        throw (New-AgentException -Message ("request protocol '{0}' is not supported by this agent (protocol {1})" -f $version, $AgentProtocol))
    }
    if ($requestOp -eq 'batch') {
        $answerJson = Invoke-Batch -OpArgs (Get-Property $request 'args')
    }
    else {
        $answerJson = Invoke-Request -Op $requestOp -OpArgs (Get-Property $request 'args')
    }
}
catch {
    $answerJson = ConvertTo-AnswerJson (New-ErrorAnswer -Op $requestOp -ErrorRecord $_ -Milliseconds 0)
}

try {
    [Console]::OutputEncoding = New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false
}
catch {
    # No console (PSRP): the answer travels as a string object. It is ASCII anyway (ConvertTo-AsciiJson).
}
Write-Output (ConvertTo-AsciiJson $answerJson)
