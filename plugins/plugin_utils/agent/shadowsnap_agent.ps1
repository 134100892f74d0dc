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
        else {
            throw (New-AgentException -Message ("unknown op '{0}' (this agent answers: {1}, batch)" -f $Op, ($ReadOps -join ', ')))
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
